"""ATLAS shared core: what every service needs and nothing service-specific."""

__version__ = "0.1.0"
