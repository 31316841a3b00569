"""ATLAS's Geometric Lens: a learned verifier trained off the request path from verified outcomes (docs/lens.md).

C(x), an energy over a candidate's embedding, orders the candidates the tests leave tied and the order in which
candidates are judged when one passing program is enough; G(x), a difficulty over the problem's embedding, is
there for routing. Weights are versioned in the state directory and reloaded live only after they check out."""

from atlas_lens.build import LensParts, build_lens
from atlas_lens.data import Contamination, FeatureCache, Sample, contamination, featurise, from_labelled
from atlas_lens.features import SOURCES, EmbeddingClient, EmbedUnavailable, Source
from atlas_lens.feedback import FeedbackRecorder
from atlas_lens.live import LiveLens
from atlas_lens.model import BadWeights, LensModel
from atlas_lens.settings import LensSettings
from atlas_lens.store import WeightStore, lens_dir
from atlas_lens.train import NotEnoughData, TrainConfig, auc, bootstrap_ci, split_by_task, train_energy
from atlas_lens.trainer import data_dir, gather, train_once

__all__ = [
    "SOURCES",
    "BadWeights",
    "Contamination",
    "EmbedUnavailable",
    "EmbeddingClient",
    "FeatureCache",
    "FeedbackRecorder",
    "LensModel",
    "LensParts",
    "LensSettings",
    "LiveLens",
    "NotEnoughData",
    "Sample",
    "Source",
    "TrainConfig",
    "WeightStore",
    "auc",
    "bootstrap_ci",
    "build_lens",
    "contamination",
    "data_dir",
    "featurise",
    "from_labelled",
    "gather",
    "lens_dir",
    "split_by_task",
    "train_energy",
    "train_once",
]
