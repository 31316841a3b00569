"""One training run, off the request path: gather the labelled data, embed it, fit C(x) and G(x), judge the new
weights against the live ones on the same held-out split, and publish them only if they are better.

``atlas lens train`` runs it once, or every N seconds (its own process: a trainer never shares a process with
requests). Never worse weights live: new weights need a validation AUC of at least ``ATLAS_LENS_MIN_AUC``
(chance is 0.5), and the live version is scored on the new run's validation split (by task) and the new
weights go live only if their AUC there is higher; ``--force`` overrides both, for an operator who knows why
(the weights' meta records that it was forced)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from redis.asyncio import Redis

from atlas_lens.data import (
    FeatureCache,
    Sample,
    embed_texts,
    featurise,
    from_feedback,
    from_labelled,
    problems,
    read_jsonl,
)
from atlas_lens.features import EmbeddingClient
from atlas_lens.feedback import records
from atlas_lens.model import BadWeights
from atlas_lens.settings import LensSettings
from atlas_lens.store import WeightStore, lens_dir
from atlas_lens.train import TrainConfig, auc, train_difficulty, train_energy

log = logging.getLogger("atlas.lens.trainer")


def data_dir(state_dir: Path) -> Path:
    return lens_dir(state_dir) / "data"


def labelled_files(state_dir: Path) -> list[Path]:
    folder = data_dir(state_dir)
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


async def gather(state_dir: Path, redis: Redis | None) -> list[Sample]:
    samples: list[Sample] = []
    for path in labelled_files(state_dir):
        samples += from_labelled(read_jsonl(path))
    if redis is not None:
        async for user, record in records(redis):
            samples += from_feedback(user, record)
    return samples


async def train_once(settings: LensSettings, embedder: EmbeddingClient, samples: list[Sample], *, force: bool = False,
                     config: TrainConfig | None = None, publish: bool = True) -> dict[str, Any]:
    """Train on ``samples``; publish when better than the live weights (or forced). Returns what happened."""
    source = settings.lens_features
    root = lens_dir(settings.state_dir)
    store = WeightStore(root, keep=settings.lens_keep)
    cache = FeatureCache(root / "features" / f"{source}.jsonl")
    x = await featurise(samples, source, embedder, cache)
    labels = np.array([s.passed for s in samples], dtype=np.int64)
    tasks = [s.task for s in samples]
    config = config or TrainConfig()
    model, report, val = train_energy(x, labels, tasks, config)
    ptasks, ptexts, hardness = problems(samples)
    difficulty = train_difficulty(await embed_texts(ptexts, embedder, cache), hardness, ptasks, config)
    if difficulty is not None:
        model.difficulty, model.difficulty_norm, report.difficulty_auc = difficulty
    outcome: dict[str, Any] = {"train": asdict(report), "source": source,
                               "labels": {k: sum(1 for s in samples if s.label == k) for k in ("hidden", "public")}}
    live = store.current()
    live_auc = None
    if live is not None:
        try:
            old = store.load(live)
            if old.meta.get("features", {}).get("source") == source and old.dim == x.shape[1]:
                live_auc = auc(-old.energies(x[val]), labels[val])
        except BadWeights as exc:
            log.warning("lens: the live weights %s are unusable (%s): any valid weights beat them", live, exc)
    outcome["live"] = {"version": live, "auc_on_this_split": None if live_auc is None else round(live_auc, 4)}
    better = live_auc is None or np.isnan(live_auc) or report.validation_auc > live_auc
    good = report.validation_auc >= settings.lens_min_auc
    outcome["published"] = None
    if not publish:
        return outcome
    if not good and not force:
        outcome["why"] = (f"validation AUC {report.validation_auc} is below ATLAS_LENS_MIN_AUC "
                          f"({settings.lens_min_auc}): no better than chance, so nothing is published")
        return outcome
    if not better and not force:
        outcome["why"] = (f"validation AUC {report.validation_auc} does not beat the live {live}'s "
                          f"{live_auc:.4f} on the same split: {live} stays live")
        return outcome
    meta = {"features": {"source": source, "dim": int(x.shape[1])}, "train": asdict(report),
            "validation": {"auc": report.validation_auc, "tasks": report.validation_tasks,
                           "samples": report.validation_samples, "live_auc": outcome["live"]["auc_on_this_split"]},
            "labels": outcome["labels"], "forced": bool(force and not (better and good))}
    outcome["published"] = store.publish(model, meta)
    return outcome
