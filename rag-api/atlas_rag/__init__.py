"""ATLAS rag-api: routing, best-of-k, verification, repair, lens, pattern cache, retrieval."""
