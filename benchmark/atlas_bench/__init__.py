"""ATLAS benchmark suite (``atlas-bench``)."""

__version__ = "0.1.0"
