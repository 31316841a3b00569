"""ATLAS PageIndex: projects a user owns and retrieval over their code."""
