"""Shared pieces of the Lens tests: separable synthetic features, a trained model, and an embedder at the test
boundary that maps texts to fixed vectors (the real embedding server is tested in tests/llama)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from atlas_lens import LensModel, TrainConfig, train_energy

DIM = 16


def separable(n_tasks: int = 40, per_task: int = 6, seed: int = 0, gap: float = 3.0
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Candidates whose label is the sign of their first feature (plus noise): a known-separable set."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n_tasks * per_task, DIM)).astype(np.float32)
    y = (rng.random(n_tasks * per_task) < 0.4).astype(np.int64)
    x[:, 0] += np.where(y == 1, gap, -gap)
    tasks = [f"t{i // per_task}" for i in range(n_tasks * per_task)]
    return x, y, tasks


def trained(seed: int = 0) -> LensModel:
    x, y, tasks = separable(seed=seed)
    model, _, _ = train_energy(x, y, tasks, TrainConfig(epochs=40, patience=10))
    return model


def vector_for(text: str) -> np.ndarray:
    """Code that says 'right' lands on the passing side of feature 0; other code on the failing side."""
    rng = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
    v = rng.normal(0, 1, DIM).astype(np.float32)
    v[0] = 3.0 if "right" in text else -3.0
    return v


class TextEmbedder:
    """Stands in for the embedding server: deterministic vectors (``vector``'s), counting calls; ``down`` makes it
    fail."""

    def __init__(self, vector: Callable[[str], np.ndarray] | None = None) -> None:
        self.vector = vector or vector_for
        self.calls = 0
        self.down = False

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        from atlas_lens import EmbedUnavailable

        self.calls += 1
        if self.down:
            raise EmbedUnavailable("the test embedder is down")
        return np.stack([self.vector(t) for t in texts])
