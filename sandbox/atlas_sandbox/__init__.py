"""ATLAS sandbox: isolated code execution and judging."""
