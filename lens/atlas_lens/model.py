"""The Lens's two networks and the weights that travel with them.

C(x): an energy over a candidate's embedding, d → 512 → 128 → 1 with SiLU and a Softplus output (energy ≥ 0;
lower means more likely correct), trained towards 2.0 for candidates that passed and 25.0 for those that failed.
G(x): a difficulty over the problem's embedding, d → 128 → 1 with a sigmoid (0 easy, 1 hard), trained towards the
share of a problem's candidates that failed. Both read features standardised by the training set's mean and
spread, which travel with the weights, as do the energy's centre and scale (normalised energy =
logistic((E - centre)/scale), fitted to the data)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

PASS_TARGET = 2.0
FAIL_TARGET = 25.0
HIDDEN = (512, 128)
DIFFICULTY_HIDDEN = 128


class EnergyNet(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, HIDDEN[0]), nn.SiLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.SiLU(),
                                 nn.Linear(HIDDEN[1], 1), nn.Softplus())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x).squeeze(-1)
        return out


class DifficultyNet(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, DIFFICULTY_HIDDEN), nn.SiLU(), nn.Linear(DIFFICULTY_HIDDEN, 1),
                                 nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x).squeeze(-1)
        return out


@dataclass
class Standardiser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        return cls(x.mean(axis=0).astype(np.float32), np.maximum(x.std(axis=0), 1e-6).astype(np.float32))

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))


@dataclass
class LensModel:
    """Trained weights, ready to score: the energy net (always), the difficulty net (when there were enough
    problems of both kinds to train one), their standardisers, the energy's centre and scale, and the metadata
    written beside them."""

    energy: EnergyNet
    energy_norm: Standardiser
    centre: float
    scale: float
    difficulty: DifficultyNet | None = None
    difficulty_norm: Standardiser | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.energy_norm.mean.shape[0])

    def energies(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = self.energy(self.energy_norm(x)).numpy()
        return out

    def normalised(self, energy: float) -> float:
        """The energy on 0..1 (the router's g_e): logistic((E - centre)/scale)."""
        z = (energy - self.centre) / self.scale
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def difficulties(self, x: np.ndarray) -> np.ndarray | None:
        if self.difficulty is None or self.difficulty_norm is None:
            return None
        with torch.inference_mode():
            out: np.ndarray = self.difficulty(self.difficulty_norm(x)).numpy()
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor, named for the safetensors file."""
        out = {f"energy.{k}": v.detach().contiguous() for k, v in self.energy.state_dict().items()}
        out["energy_norm.mean"] = torch.from_numpy(self.energy_norm.mean)
        out["energy_norm.std"] = torch.from_numpy(self.energy_norm.std)
        if self.difficulty is not None and self.difficulty_norm is not None:
            out |= {f"difficulty.{k}": v.detach().contiguous() for k, v in self.difficulty.state_dict().items()}
            out["difficulty_norm.mean"] = torch.from_numpy(self.difficulty_norm.mean)
            out["difficulty_norm.std"] = torch.from_numpy(self.difficulty_norm.std)
        return out


class BadWeights(Exception):
    """Weights that cannot be used: the message says what is wrong with them."""


def from_tensors(tensors: dict[str, torch.Tensor], dim: int, centre: float, scale: float,
                 meta: dict[str, Any]) -> LensModel:
    """Rebuild the model from a safetensors file's tensors, refusing anything of the wrong shape or not finite."""
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise BadWeights(f"tensor {name} holds NaN or infinite values")
    if not (math.isfinite(centre) and math.isfinite(scale) and scale > 0):
        raise BadWeights(f"energy centre {centre} / scale {scale} are not usable")
    energy = EnergyNet(dim)
    _load(energy, "energy.", tensors)
    energy_norm = _norm("energy_norm.", tensors, dim)
    difficulty = difficulty_norm = None
    if any(k.startswith("difficulty.") for k in tensors):
        difficulty = DifficultyNet(dim)
        _load(difficulty, "difficulty.", tensors)
        difficulty_norm = _norm("difficulty_norm.", tensors, dim)
    energy.eval()
    if difficulty is not None:
        difficulty.eval()
    return LensModel(energy, energy_norm, centre, scale, difficulty, difficulty_norm, meta)


def _load(net: nn.Module, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    want = net.state_dict()
    got = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    if set(got) != set(want):
        raise BadWeights(f"{prefix.rstrip('.')} tensors {sorted(got)} do not match the network's {sorted(want)}")
    for k, v in got.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise BadWeights(f"tensor {prefix}{k} has shape {tuple(v.shape)}, the network needs "
                             f"{tuple(want[k].shape)}")
    net.load_state_dict(got)


def _norm(prefix: str, tensors: dict[str, torch.Tensor], dim: int) -> Standardiser:
    try:
        mean, std = tensors[prefix + "mean"].numpy(), tensors[prefix + "std"].numpy()
    except KeyError as exc:
        raise BadWeights(f"tensor {exc.args[0]} is missing") from None
    if mean.shape != (dim,) or std.shape != (dim,) or (std <= 0).any():
        raise BadWeights(f"{prefix}mean/std have shapes {mean.shape}/{std.shape} (need ({dim},)) or a spread ≤ 0")
    return Standardiser(mean.astype(np.float32), std.astype(np.float32))
