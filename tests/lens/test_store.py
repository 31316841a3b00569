"""Versioned weights: a round trip, atomic publishing, rollback, and every kind of bad file refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from atlas_lens import BadWeights, WeightStore
from atlas_lens.store import META, WEIGHTS
from tests.lens.helpers import DIM, separable, trained

META_IN = {"features": {"source": "embed", "dim": DIM}, "validation": {"auc": 0.9}}


def test_published_weights_load_back_identical(tmp_path: Path) -> None:
    store = WeightStore(tmp_path)
    model = trained()
    name = store.publish(model, META_IN)
    assert name == "v0001" and store.current() == "v0001"
    loaded = store.load(name)
    x, _, _ = separable(seed=3)
    assert np.allclose(loaded.energies(x), model.energies(x))
    assert loaded.meta["validation"]["auc"] == 0.9 and loaded.meta["previous"] is None
    assert (tmp_path / "versions" / name / WEIGHTS).read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle


def test_rollback_makes_the_previous_version_live_and_old_versions_are_pruned(tmp_path: Path) -> None:
    store = WeightStore(tmp_path, keep=2)
    model = trained()
    for _ in range(4):
        store.publish(model, META_IN)
    assert store.current() == "v0004"
    assert store.versions() == ["v0003", "v0004"]
    assert store.rollback() == "v0003" and store.current() == "v0003"
    with pytest.raises(BadWeights, match="no earlier version"):
        store.rollback()  # v0002 was pruned


def _tamper(store: WeightStore, name: str, tensors: dict[str, torch.Tensor] | None = None,
            meta: dict[str, object] | None = None) -> None:
    """Rewrite a version's tensors or meta, keeping its checksum consistent (only the content is wrong)."""
    import hashlib

    folder = store.versions_dir / name
    if tensors is not None:
        save_file(tensors, str(folder / WEIGHTS))
    recorded = json.loads((folder / META).read_text())
    recorded["sha256"] = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    (folder / META).write_text(json.dumps(recorded | (meta or {})))


def test_every_kind_of_bad_weights_is_refused_with_the_reason(tmp_path: Path) -> None:
    store = WeightStore(tmp_path)
    model = trained()
    good = model.tensors()

    name = store.publish(model, META_IN)
    path = store.versions_dir / name / WEIGHTS
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(BadWeights, match="sha256"):
        store.load(name)

    name = store.publish(model, META_IN)
    _tamper(store, name, tensors={k: (v * float("nan") if k == "energy.net.0.weight" else v) for k, v in good.items()})
    with pytest.raises(BadWeights, match="NaN"):
        store.load(name)

    name = store.publish(model, META_IN)
    _tamper(store, name, tensors={k: v for k, v in good.items() if k != "energy.net.2.bias"})
    with pytest.raises(BadWeights, match="do not match"):
        store.load(name)

    name = store.publish(model, META_IN)
    _tamper(store, name, meta={"dim": DIM + 1})
    with pytest.raises(BadWeights, match="shape"):
        store.load(name)

    name = store.publish(model, META_IN)
    (store.versions_dir / name / META).write_text("{not json")
    with pytest.raises(BadWeights, match="unreadable"):
        store.load(name)

    name = store.publish(model, META_IN)
    (store.versions_dir / name / WEIGHTS).write_bytes(b"\x80\x04\x95 a pickle, say")
    _tamper(store, name)
    with pytest.raises(BadWeights, match="safetensors"):
        store.load(name)
