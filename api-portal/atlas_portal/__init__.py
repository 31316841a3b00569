"""ATLAS API portal: users, JWT, sk-llm- keys, usage, models."""
