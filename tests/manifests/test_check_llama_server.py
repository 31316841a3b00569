"""scripts/k8s/check_llama_server.py, the check to run on a GPU box, runs the overlay's own command line with local
model files, port and key: its substitution is exact, whatever else the manifest passes goes through unchanged."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import REPO


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_llama_server", REPO / "scripts/k8s/check_llama_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load()


def test_the_gpu_command_line_is_run_as_the_manifest_has_it(tmp_path: Path) -> None:
    args = check.manifest_args("k3s-gpu", "llama-server")
    local = check.local_args(args, port=5555, key_file=tmp_path / "k", model=tmp_path / "m.gguf",
                             draft=tmp_path / "d.gguf")
    pairs = dict(itertools.pairwise(local))
    assert pairs["--model"] == str(tmp_path / "m.gguf") and pairs["--model-draft"] == str(tmp_path / "d.gguf")
    assert pairs["--port"] == "5555" and pairs["--host"] == "127.0.0.1"
    assert pairs["--api-key-file"] == str(tmp_path / "k")
    untouched = [a for a, b in zip(args, local, strict=True) if a == b]
    assert {"--n-gpu-layers", "all", "--flash-attn", "--parallel", "4", "--metrics"} <= set(untouched)
    assert len(local) == len(args)


def test_the_embedding_command_line_keeps_its_pooling() -> None:
    args = check.manifest_args("cpu", "embedding-server")
    assert "--embeddings" in args and args[args.index("--pooling") + 1] == "mean"
