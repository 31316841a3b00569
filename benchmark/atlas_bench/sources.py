"""Where each dataset's files come from and how they are read: a local directory (``--data-path`` or
``ATLAS_DATA_DIR``) laid out as ``../shared/datasets/`` is, with a file that is missing fetched from the original
source first when downloading is allowed. Each file's SHA-256 is recorded; the loaders refuse a pinned release
with another hash unless told otherwise."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_bench.problems import DatasetError


@dataclass(frozen=True)
class DatasetSource:
    path: str  # relative to the data directory
    url: str
    sha256: str | None  # pinned release; None: recorded, not checked


SOURCES = {
    "humaneval": DatasetSource("humaneval/HumanEval.jsonl.gz",
                               "https://github.com/openai/human-eval/raw/master/data/HumanEval.jsonl.gz",
                               "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"),
    "humanevalplus": DatasetSource("humanevalplus/HumanEvalPlus-OriginFmt.jsonl.gz",
                                   "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/"
                                   "HumanEvalPlus-OriginFmt.jsonl.gz",
                                   "daa7661c8189924068069b0872a440b491edb60f8bdf431d5957adc88d18bae5"),
    "humanevalplus-native": DatasetSource("humanevalplus/HumanEvalPlus.jsonl.gz",
                                          "https://github.com/evalplus/humanevalplus_release/releases/download/"
                                          "v0.1.10/HumanEvalPlus.jsonl.gz",
                                          "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101"),
    "humanevalplus-mini": DatasetSource("humanevalplus/HumanEvalPlus-Mini.jsonl.gz",
                                        "https://github.com/evalplus/humanevalplus_release/releases/download/"
                                        "v0.1.10/HumanEvalPlus-Mini.jsonl.gz",
                                        "91486741f1627101021fbe50523df08eebb5b0bf5e804b633dcd5ca3c14dbd2f"),
    "mbpp": DatasetSource("mbpp/mbpp.jsonl",
                          "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/mbpp.jsonl",
                          "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f"),
    "mbpp-sanitized": DatasetSource("mbpp/sanitized-mbpp.json",
                                    "https://raw.githubusercontent.com/google-research/google-research/master/"
                                    "mbpp/sanitized-mbpp.json",
                                    "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9"),
    "mbppplus": DatasetSource("mbppplus/MbppPlus-OriginFmt.jsonl.gz",
                              "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/"
                              "MbppPlus-OriginFmt.jsonl.gz",
                              "7a5aec547b134fa297ee6c45f829298aa3f58de02547b8d8a5c3d85d9cb10efc"),
    # LiveCodeBench's files change with each release: recorded, not pinned. Offline copies carry public tests only.
    "livecodebench": DatasetSource("livecodebench/release_v1_public.jsonl.gz",
                                   "https://huggingface.co/datasets/livecodebench/code_generation_lite/resolve/"
                                   "main/test.jsonl", None),
}
# LiveCodeBench publishes each release as one more file (test.jsonl is release_v1's 400 problems, test2.jsonl
# adds release_v2's, ...); its loader names a release (cumulative) or files (vN, vA_vB). The offline copy of
# test.jsonl holds the public tests only; offline, it stands in for release_v1 alone, flagged (livecodebench.py).
LCB_FILES = 6
LCB_URL = "https://huggingface.co/datasets/livecodebench/code_generation_lite/resolve/main/"
LCB_OFFLINE_V1 = "livecodebench/release_v1_public.jsonl.gz"

# The MBPP splits (task ids), as the original release defines them.
MBPP_SPLITS = {"test": (11, 510), "validation": (511, 600), "train": (601, 974), "prompt": (1, 10)}


def lcb_files(release: str) -> list[str]:
    """The files of a LiveCodeBench release tag: release_vN (v1 to vN), release_latest, vN (only N's new
    problems) or vA_vB (A's to B's)."""
    match = re.fullmatch(r"release_v(\d+)|v(\d+)(?:_v(\d+))?", release)
    first = last = 0
    if release == "release_latest":
        first, last = 1, LCB_FILES
    elif match:
        cumulative, first_n, last_n = match.groups()
        first, last = (1, int(cumulative)) if cumulative else (int(first_n), int(last_n or first_n))
    if not 1 <= first <= last <= LCB_FILES:
        raise DatasetError(f"unknown LiveCodeBench release {release!r}: release_v1 .. release_v{LCB_FILES}, "
                           "release_latest, vN (that release's new problems) or vA_vB")
    numbers = range(first, last + 1)
    return [f"livecodebench/test{'' if n == 1 else n}.jsonl" for n in numbers]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(source: DatasetSource, data_dir: Path, download: bool) -> Path:
    """The local file, downloaded from the original source first when it is missing and ``download``."""
    path = data_dir / source.path
    if path.is_file():
        return path
    if not download:
        raise DatasetError(f"{path} is missing: point --data-path (or ATLAS_DATA_DIR) at a directory that has "
                           f"{source.path}, or pass --download to fetch it from {source.url}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(source.url, timeout=60) as answer, tmp.open("wb") as out:  # noqa: S310 (fixed https URLs)
            while chunk := answer.read(1 << 20):
                out.write(chunk)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"could not download {source.url} ({exc}); copy the file to {path} instead") from None
    if source.url.endswith(".jsonl") and path.suffix == ".gz":  # an uncompressed source for a .gz name
        tmp.write_bytes(gzip.compress(tmp.read_bytes()))
    tmp.replace(path)
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file (gzipped or not) or of a JSON array (``.json``)."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        if path.suffix == ".json":
            data = json.load(handle)
            return list(data)
        return [json.loads(line) for line in handle if line.strip()]
