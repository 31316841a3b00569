"""ATLAS LLM proxy: the OpenAI-compatible front door (auth, limits, metering, streaming)."""
