"""PageIndex's settings (ATLAS_PROJECT_*): the bounds on what projects may hold and what retrieval may spend.
rag-api's settings include them."""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import AtlasSettings

# The modes a search takes (``search``): here, so the CLI offers them without importing the search (BM25, the store).
SEARCH_MODES = ("auto", "bm25", "embed", "hybrid", "tree")


class PageIndexSettings(AtlasSettings):
    project_max_per_user: int = Field(
        20, ge=1, le=10_000, description="Projects one user may own; creating more gets 409 until one is deleted.")
    project_max_files: int = Field(
        20_000, ge=1, le=1_000_000, description="Files one project may hold (skipped files do not count).")
    project_max_file_bytes: int = Field(
        1024 * 1024, ge=1024, le=16 * 1024 * 1024,
        description="Largest file a project takes, in bytes of UTF-8 (a larger one refuses its request with 413; "
        "atlas project sync leaves it out).")
    project_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, le=16 * 1024**3,
        description="Bytes of source one project may hold (413 beyond, and nothing of that request is written).")
    project_max_total_bytes: int = Field(
        1024**3, ge=1024, le=1024**4,
        description="Bytes of source all projects together may hold in Redis (507 beyond).")
    project_context_chars: int = Field(
        6_000, ge=0, le=100_000, description="Characters of retrieved project code a solve's prompts carry at most.")
    project_context_chunks: int = Field(
        6, ge=1, le=50,
        description="Retrieved pieces (functions, classes, file heads) a solve's prompts carry at most.")
    project_index_cache: int = Field(
        8, ge=1, le=1_000, description="Projects whose search index each rag-api process keeps in memory (least "
        "recently used dropped first; a dropped one is rebuilt from Redis at its next query).")
    project_embeddings: bool = Field(
        True, description="Embed each function and class with the embedding server in the background (hybrid "
        "search needs them; without, retrieval is BM25 alone).")
    project_summaries: bool = Field(
        True, description="Have the model write one-line summaries bottom-up (functions, classes, files, "
        "directories) in the background, for tree search; kept while a file's hash is unchanged.")
    project_summary_max_nodes: int = Field(
        2_000, ge=0, le=1_000_000, description="Summaries the model writes per project at most (the rest of the "
        "tree shows signatures and docstrings).")
    project_tree_calls: int = Field(
        40, ge=1, le=200, description="Model calls one tree search may make (PLATFORM.md §5: at most 40).")
    project_tree_depth: int = Field(6, ge=1, le=20, description="Levels one tree search descends at most.")
    project_search_max_k: int = Field(50, ge=1, le=500, description="Results one search may return at most.")
