"""Training C(x) and G(x): a known-separable set is learned, too little data is refused, splits are by task."""

from __future__ import annotations

import numpy as np
import pytest

from atlas_lens import NotEnoughData, TrainConfig, auc, bootstrap_ci, split_by_task, train_energy
from atlas_lens.train import train_difficulty
from tests.lens.helpers import separable


def test_auc_by_rank_sum() -> None:
    assert auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5  # ties count half
    assert np.isnan(auc([0.1, 0.2], [1, 1]))


def test_a_known_separable_set_is_learned_to_a_high_validation_auc() -> None:
    x, y, tasks = separable()
    model, report, val = train_energy(x, y, tasks, TrainConfig(epochs=60, patience=15))
    assert report.validation_auc >= 0.95
    held_out = auc(-model.energies(x[val]), y[val])
    assert held_out == pytest.approx(report.validation_auc, abs=1e-3)
    energies = model.energies(x)
    assert (energies >= 0).all()  # Softplus: an energy
    assert np.median(energies[y == 1]) < np.median(energies[y == 0])  # passing candidates sit lower
    # the normalised energy is fitted to the data: the classes' medians land on either side of one half
    low, high = float(np.median(energies[y == 1])), float(np.median(energies[y == 0]))
    assert model.normalised(low) < 0.5 < model.normalised(high)


def test_labels_the_features_do_not_carry_give_a_chance_auc() -> None:
    x, y, tasks = separable(gap=0.0)
    _, report, _ = train_energy(x, y, tasks, TrainConfig(epochs=30, patience=10))
    assert report.validation_auc < 0.8


def test_the_validation_split_keeps_each_task_on_one_side() -> None:
    tasks = [f"t{i // 5}" for i in range(500)]
    train, val = split_by_task(tasks, 0.2)
    assert not ({t for t, v in zip(tasks, val, strict=True) if v} & {t for t, v in zip(tasks, train, strict=True) if v})
    assert 0.1 < val.mean() < 0.3
    assert (split_by_task(tasks, 0.2)[1] == val).all()  # the same split every time


def test_too_few_of_a_class_is_refused() -> None:
    x, y, tasks = separable()
    y[:] = 0
    y[:4] = 1
    with pytest.raises(NotEnoughData, match="4 passing"):
        train_energy(x, y, tasks)


def test_the_bootstrap_interval_brackets_the_estimate() -> None:
    x, y, tasks = separable(gap=1.0)
    scores = x[:, 0]
    low, high = bootstrap_ci(scores, y, tasks, rounds=200)
    assert low <= auc(scores, y) <= high


def test_difficulty_learns_which_problems_nothing_solves() -> None:
    rng = np.random.default_rng(1)
    tasks = [f"p{i}" for i in range(200)]
    hard = rng.random(200) < 0.5
    x = rng.normal(0, 1, (200, 16)).astype(np.float32)
    x[:, 1] += np.where(hard, 2.5, -2.5)
    fitted = train_difficulty(x, np.where(hard, 1.0, 0.2), tasks)
    assert fitted is not None
    assert fitted[2] >= 0.9
    assert train_difficulty(x[:5], np.ones(5), tasks[:5]) is None  # too few problems
