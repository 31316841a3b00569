"""The Lens as rag-api and the task-workers run it, built from settings."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from atlas_lens.features import EmbeddingClient
from atlas_lens.feedback import FeedbackRecorder
from atlas_lens.live import LiveLens
from atlas_lens.settings import LensSettings
from atlas_lens.store import WeightStore, lens_dir


@dataclass
class LensParts:
    lens: LiveLens  # the engine's scorer and estimator; ``lens.watch()`` reloads weights
    feedback: FeedbackRecorder
    sidecar: EmbeddingClient  # the embedding sidecar's client (the Lens's own when it reads ``embed`` features)


def build_lens(http: httpx.AsyncClient, redis: Redis, settings: LensSettings, registry: CollectorRegistry
               ) -> LensParts:
    embedder = EmbeddingClient(http, settings.features_url(), settings.llama_api_key.get_secret_value(),
                        timeout_s=settings.lens_timeout_s)
    lens = LiveLens(embedder, WeightStore(lens_dir(settings.state_dir), keep=settings.lens_keep), settings, registry)
    lens.refresh()  # weights at start, before the first request
    sidecar = embedder if settings.lens_features == "embed" else EmbeddingClient(
        http, settings.embed_url, settings.llama_api_key.get_secret_value(), timeout_s=settings.lens_timeout_s)
    return LensParts(lens, FeedbackRecorder(redis, embedder, settings, registry), sidecar)
