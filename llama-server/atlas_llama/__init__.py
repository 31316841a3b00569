"""ATLAS llama-server: model discovery and the local embedding server (llama-server B)."""
