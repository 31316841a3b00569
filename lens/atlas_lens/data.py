"""Training data: labelled candidates, their features, and the check that no evaluation problem is among them.

Two kinds of labels, kept apart in the samples:
- ``hidden``: candidates labelled by a problem's hidden tests (``atlas lens bootstrap`` on training problems, one
  JSONL file per run under ``<state>/lens/data/``: ``{"task", "dataset", "problem", "candidates": [{"code",
  "passed"}]}``);
- ``public``: users' solves where learning is on, labelled by whether the candidate passed the public tests
  (the user's and the statement's examples); solves with no public test teach nothing and are skipped."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atlas_lens.features import EmbeddingClient, Source, code_text, problem_text, unpack

MAX_CACHE_LINES = 200_000
NEAR_DUPLICATE = 0.95  # cosine similarity of two problem statements' embeddings that counts as the same problem


@dataclass
class Sample:
    task: str
    problem: str
    code: str
    passed: bool
    label: str = "hidden"  # or "public"
    vector: Any = None  # a stored embedding to use when its source is the one trained on (feedback records)
    vector_source: str | None = None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a kill mid-write
            if isinstance(row, dict):
                rows.append(row)
    return rows


def from_labelled(rows: Iterable[dict[str, Any]]) -> list[Sample]:
    out = []
    for row in rows:
        for c in row.get("candidates") or []:
            if c.get("code"):
                out.append(Sample(task=str(row["task"]), problem=str(row["problem"]), code=str(c["code"]),
                                  passed=bool(c.get("passed"))))
    return out


def from_feedback(user: str, record: dict[str, Any]) -> list[Sample]:
    problem = str(record.get("problem") or "")
    task = f"{user}:{problem_hash(problem)}"
    source = (record.get("features") or {}).get("source")
    out = []
    for c in record.get("candidates") or []:
        if not c.get("code") or not c.get("public_total"):
            continue
        out.append(Sample(task=task, problem=problem, code=str(c["code"]), passed=c.get("verdict") == "passed",
                          label="public", vector=c.get("embedding"), vector_source=source))
    return out


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def problem_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


class FeatureCache:
    """Embeddings by (source, text hash), on disk as JSONL, so re-training does not re-embed every candidate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.is_file():
            for row in read_jsonl(path):
                try:
                    self.vectors[row["h"]] = np.frombuffer(base64.b64decode(row["v"]), dtype=np.float32)
                except (KeyError, ValueError):
                    continue

    def save_new(self, new: dict[str, np.ndarray]) -> None:
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = "a" if len(self.vectors) < MAX_CACHE_LINES else "w"  # the bound: start over when it is full
        if mode == "w":
            self.vectors = {}
        with self.path.open(mode, encoding="utf-8") as handle:
            for h, v in new.items():
                handle.write(json.dumps({"h": h, "v": base64.b64encode(v.astype(np.float32).tobytes()).decode()})
                             + "\n")
        self.vectors |= new


async def embed_texts(texts: Sequence[str], embedder: EmbeddingClient, cache: FeatureCache | None) -> np.ndarray:
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    known = cache.vectors if cache is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in known))
    by_key = dict(zip(keys, texts, strict=True))
    new: dict[str, np.ndarray] = {}
    if todo:
        vectors = await embedder.embed([by_key[k] for k in todo])
        new = dict(zip(todo, vectors, strict=True))
        if cache is not None:
            cache.save_new(new)
    return np.stack([known[k] if k in known else new[k] for k in keys])


async def featurise(samples: Sequence[Sample], source: Source, embedder: EmbeddingClient,
                    cache: FeatureCache | None = None) -> np.ndarray:
    """One feature row per sample under ``source``: the stored embedding when it came from that source,
    else the embedder's."""
    texts = [code_text(source, s.problem, s.code) for s in samples]
    rows: list[np.ndarray | None] = [unpack(s.vector) if s.vector and s.vector_source == source else None
                                     for s in samples]
    need = [i for i, r in enumerate(rows) if r is None]
    if need:
        fresh = await embed_texts([texts[i] for i in need], embedder, cache)
        for i, v in zip(need, fresh, strict=True):
            rows[i] = v
    return np.stack([r for r in rows if r is not None])


def problems(samples: Sequence[Sample]) -> tuple[list[str], list[str], np.ndarray]:
    """One row per task: its id, statement, and the share of its candidates that failed (G(x)'s target)."""
    by_task: dict[str, list[Sample]] = {}
    for s in samples:
        by_task.setdefault(s.task, []).append(s)
    tasks = sorted(by_task)
    texts = [problem_text(by_task[t][0].problem) for t in tasks]
    hardness = np.array([1.0 - sum(s.passed for s in by_task[t]) / len(by_task[t]) for t in tasks])
    return tasks, texts, hardness


@dataclass
class Contamination:
    training: int
    evaluation: int
    exact: list[tuple[str, str]]
    near: list[tuple[str, str, float]]

    @property
    def clean(self) -> bool:
        return not self.exact and not self.near

    def lines(self) -> list[str]:
        out = [f"decontamination: {self.training} training problems vs {self.evaluation} evaluation problems",
               f"  same statement (sha256 of the normalised text): {len(self.exact)}",
               f"  near duplicates (embedding cosine >= {NEAR_DUPLICATE}): {len(self.near)}"]
        out += [f"    {a} == {b}" for a, b in self.exact[:10]]
        out += [f"    {a} ~ {b} ({sim:.3f})" for a, b, sim in self.near[:10]]
        out.append("  clean" if self.clean else "  CONTAMINATED: these problems must leave the training data")
        return out


async def contamination(training: dict[str, str], evaluation: dict[str, str], embedder: EmbeddingClient | None,
                        cache: FeatureCache | None = None) -> Contamination:
    """Evaluation problems found among training problems, by hash and by near-duplicate embeddings (id → text
    on each side; the embedder is the embedding server's, whatever the Lens's features are)."""
    by_hash = {problem_hash(t): i for i, t in training.items()}
    exact = [(i, by_hash[problem_hash(t)]) for i, t in evaluation.items() if problem_hash(t) in by_hash]
    near: list[tuple[str, str, float]] = []
    if embedder is not None and training and evaluation:
        tr_ids, ev_ids = list(training), list(evaluation)
        a = await embed_texts([problem_text(training[i]) for i in tr_ids], embedder, cache)
        b = await embed_texts([problem_text(evaluation[i]) for i in ev_ids], embedder, cache)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-9)
        sims = b @ a.T
        for e, row in enumerate(sims):
            t = int(row.argmax())
            if row[t] >= NEAR_DUPLICATE:
                near.append((ev_ids[e], tr_ids[t], float(row[t])))
    return Contamination(len(training), len(evaluation), exact, near)
