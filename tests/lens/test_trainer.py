"""A training run: the labelled files and the feedback are read, weights are published only when they beat the
live ones on the same held-out split, and the trainer never makes worse weights live unless forced."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from atlas_lens import EmbeddingClient, WeightStore, data_dir, from_labelled, lens_dir, train_once
from atlas_lens.data import read_jsonl
from atlas_lens.train import TrainConfig
from tests.lens.helpers import TextEmbedder
from tests.lens.test_live import settings


def write_rows(state: Path, name: str) -> None:
    """60 problems, 6 candidates each; 'right' code passes."""
    rng = np.random.default_rng(0)
    folder = data_dir(state)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"bootstrap-{name}.jsonl").open("w") as handle:
        for t in range(60):
            cands = []
            for c in range(6):
                right = bool(rng.random() < 0.4)
                cands.append({"code": f"# {'right' if right else 'wrong'} {t}.{c}", "passed": right})
            handle.write(json.dumps({"task": f"p{t}", "problem": f"problem {t}", "candidates": cands}) + "\n")


def train(state: Path, config: TrainConfig | None = None, floor: str = "0.55", **kwargs: Any) -> dict[str, Any]:
    samples = [s for p in sorted(data_dir(state).glob("*.jsonl")) for s in from_labelled(read_jsonl(p))]
    return asyncio.run(train_once(settings(state, ATLAS_LENS_MIN_AUC=floor), cast(EmbeddingClient, TextEmbedder()),
                                  samples, config=config or TrainConfig(epochs=30, patience=10), **kwargs))


CRIPPLED = TrainConfig(epochs=1, patience=1, lr=1e-7)  # a run that learns next to nothing


def test_a_run_publishes_then_worse_weights_stay_out_unless_forced(tmp_path: Path) -> None:
    write_rows(tmp_path, "good")
    first = train(tmp_path)
    assert first["published"] == "v0001" and first["train"]["validation_auc"] >= 0.9
    assert first["labels"] == {"hidden": 360, "public": 0}
    store = WeightStore(lens_dir(tmp_path))
    meta = store.meta("v0001")
    assert meta["features"] == {"source": "embed", "dim": 16} and meta["validation"]["live_auc"] is None

    low = train(tmp_path, CRIPPLED, floor="0.99")  # under the floor nothing goes live, whatever is live
    assert low["published"] is None and "below ATLAS_LENS_MIN_AUC (0.99)" in low["why"]
    worse = train(tmp_path, CRIPPLED, floor="0")  # past the floor, it must still beat the live weights
    assert worse["published"] is None and "stays live" in worse["why"]
    assert worse["live"]["version"] == "v0001" and worse["live"]["auc_on_this_split"] > worse["train"]["validation_auc"]
    assert store.current() == "v0001"

    forced = train(tmp_path, CRIPPLED, force=True)
    assert forced["published"] == "v0002" and store.meta("v0002")["forced"] is True
    assert store.rollback() == "v0001"


def test_features_are_cached_so_a_second_run_embeds_nothing_new(tmp_path: Path) -> None:
    write_rows(tmp_path, "good")
    embedder = TextEmbedder()
    samples = [s for p in data_dir(tmp_path).glob("*.jsonl") for s in from_labelled(read_jsonl(p))]
    for _ in range(2):
        asyncio.run(train_once(settings(tmp_path), cast(EmbeddingClient, embedder), samples,
                               config=TrainConfig(epochs=5, patience=5), publish=False))
    first_calls = embedder.calls
    asyncio.run(train_once(settings(tmp_path), cast(EmbeddingClient, embedder), samples,
                           config=TrainConfig(epochs=5, patience=5), publish=False))
    assert embedder.calls == first_calls  # every vector came from <state>/lens/features
