"""Training the Lens off the request path, and the measures it is judged by.

Samples are split into train and validation by task (problem), never by candidate: candidates of one problem
look alike, and a split by candidate would let the validation AUC read the problem instead of the code. C(x) is
fitted towards 2.0 (passed) / 25.0 (failed) with class weights, Adam, and early stopping on the validation AUC;
the weights kept are the epoch with the best validation AUC."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from atlas_lens.model import FAIL_TARGET, PASS_TARGET, DifficultyNet, EnergyNet, LensModel, Standardiser

MIN_PER_CLASS = 5  # fewer passing or failing candidates than this: no weights (ATLAS's floor)
MIN_TASKS = 10  # problems needed for a difficulty net, with easy and hard ones among them


class NotEnoughData(Exception):
    """Too few labelled candidates (or of one class) to train or validate on."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 300
    patience: int = 30  # epochs without a better validation AUC before stopping
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch: int = 64
    validation_share: float = 0.2
    seed: int = 0


def auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """ROC AUC of ``scores`` (higher = more likely positive) by the rank-sum formula, ties counted half."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def task_bucket(task: str, seed: int = 0) -> float:
    """A task's fixed place in [0, 1): the same task lands on the same side of every split."""
    digest = hashlib.sha256(f"{seed}:{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_task(tasks: Sequence[str], share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, validation): a task's candidates all fall on one side."""
    val = np.array([task_bucket(t, seed) < share for t in tasks], dtype=bool)
    return ~val, val


def bootstrap_ci(scores: np.ndarray, labels: np.ndarray, tasks: Sequence[str], rounds: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95 % interval of the AUC, resampling whole tasks (candidates of a task are not independent)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault(t, []).append(i)
    members = list(groups.values())
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[p] for p in pick])
        a = auc(scores[idx], labels[idx])
        if not np.isnan(a):
            values.append(a)
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


@dataclass
class TrainReport:
    samples: int
    tasks: int
    positives: int
    negatives: int
    validation_auc: float
    validation_samples: int
    validation_tasks: int
    epochs: int
    seconds: float
    difficulty_auc: float | None = None


def _check(labels: np.ndarray, what: str) -> None:
    pos = int(labels.sum())
    if pos < MIN_PER_CLASS or len(labels) - pos < MIN_PER_CLASS:
        raise NotEnoughData(f"{what}: {pos} passing and {len(labels) - pos} failing candidates; need at least "
                            f"{MIN_PER_CLASS} of each")


def train_energy(x: np.ndarray, labels: np.ndarray, tasks: Sequence[str], config: TrainConfig | None = None
                 ) -> tuple[LensModel, TrainReport, np.ndarray]:
    """Fit C(x); returns the model, its report and the validation mask (so a rival can be judged on the same
    split)."""
    config = config or TrainConfig()
    started = time.perf_counter()
    labels = labels.astype(np.int64)
    _check(labels, "training data")
    train, val = split_by_task(tasks, config.validation_share, config.seed)
    _check(labels[train], "training split")
    _check(labels[val], "validation split (by task)")
    torch.manual_seed(config.seed)
    norm = Standardiser.fit(x[train])
    xt, xv = norm(x[train]), norm(x[val])
    yt = labels[train]
    target = torch.from_numpy(np.where(yt == 1, PASS_TARGET, FAIL_TARGET).astype(np.float32))
    pos = max(1, int(yt.sum()))
    neg = max(1, len(yt) - pos)
    weights = torch.from_numpy(np.where(yt == 1, len(yt) / (2 * pos), len(yt) / (2 * neg)).astype(np.float32))
    net = EnergyNet(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    best, best_state, stale, epochs = -1.0, None, 0, 0
    for epoch in range(config.epochs):
        net.train()
        for batch in torch.split(torch.randperm(len(yt), generator=gen), config.batch):
            opt.zero_grad()
            loss = (weights[batch] * (net(xt[batch]) - target[batch]) ** 2).mean()
            loss.backward()
            opt.step()
        net.eval()
        with torch.inference_mode():
            score = auc(-net(xv).numpy(), labels[val])  # lower energy = more likely correct
        epochs = epoch + 1
        if score > best:
            best, stale = score, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    with torch.inference_mode():
        energies = net(xt).numpy()
    centre, scale = _centre_scale(energies, yt)
    model = LensModel(net, norm, centre, scale)
    report = TrainReport(samples=len(labels), tasks=len(set(tasks)), positives=int(labels.sum()),
                         negatives=int(len(labels) - labels.sum()), validation_auc=round(best, 4),
                         validation_samples=int(val.sum()),
                         validation_tasks=len({t for t, v in zip(tasks, val, strict=True) if v}),
                         epochs=epochs, seconds=round(time.perf_counter() - started, 3))
    return model, report, val


def _centre_scale(energies: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The logistic's centre halfway between the classes' median energies, its scale a quarter of the gap
    between them (so the classes' medians normalise to about 0.12 and 0.88); a spread of the energies when the
    classes do not separate."""
    passed, failed = np.median(energies[labels == 1]), np.median(energies[labels == 0])
    centre = float((passed + failed) / 2.0)
    gap = float(failed - passed)
    scale = gap / 4.0 if gap > 1e-6 else float(max(np.std(energies), 1e-3))
    return centre, scale


def train_difficulty(x: np.ndarray, hardness: np.ndarray, tasks: Sequence[str], config: TrainConfig | None = None
                     ) -> tuple[DifficultyNet, Standardiser, float] | None:
    """Fit G(x) on one row per problem (``hardness``: the share of its candidates that failed); None when there
    are too few problems, or no easy or no hard ones to tell apart. The AUC returned is the validation split's,
    for telling the problems nothing solved from the rest."""
    config = config or TrainConfig()
    hard = (hardness >= 1.0).astype(np.int64)
    if len(tasks) < MIN_TASKS or hard.sum() == 0 or hard.sum() == len(hard):
        return None
    train, val = split_by_task(tasks, config.validation_share, config.seed)
    if val.sum() == 0 or train.sum() == 0:
        return None
    torch.manual_seed(config.seed)
    norm = Standardiser.fit(x[train])
    xt, xv = norm(x[train]), norm(x[val])
    yt = torch.from_numpy(hardness[train].astype(np.float32))
    net = DifficultyNet(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=1e-3)
    for _ in range(min(config.epochs, 200)):
        net.train()
        opt.zero_grad()
        loss = ((net(xt) - yt) ** 2).mean()
        loss.backward()
        opt.step()
    net.eval()
    with torch.inference_mode():
        score = auc(net(xv).numpy(), hard[val])
    return net, norm, round(score, 4) if not np.isnan(score) else float("nan")
