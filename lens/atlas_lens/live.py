"""The Lens as a running service uses it: the engine's ``Scorer`` (C(x)) and ``Estimator`` (G(x)) over the live
weights, which it swaps for newly published ones without a restart.

A reload loads and checks the new version completely before it replaces the model (one assignment), so a solve
in flight keeps the model it started scoring with and none waits. Weights that fail their checks are refused
with one log line naming the version and the reason, and the old weights stay live. Weights trained on other
features than this service embeds are refused the same way. With no weights, or the embedding server down, the
Lens has no opinion (None) and the solve goes on without it."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from atlas_engine import Problem
from atlas_lens.features import EmbeddingClient, EmbedUnavailable, code_text, problem_text
from atlas_lens.model import BadWeights, LensModel
from atlas_lens.settings import LensSettings
from atlas_lens.store import WeightStore

log = logging.getLogger("atlas.lens")


class LensMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.version = Gauge("atlas_lens_weights_version", "The live Lens weights' version number (0: none)",
                             registry=registry)
        self.auc = Gauge("atlas_lens_validation_auc", "Validation AUC (by task) of the live Lens weights",
                         registry=registry)
        self.reloads = Counter("atlas_lens_reloads_total", "Lens weight versions loaded or refused", ["result"],
                               registry=registry)
        self.scored = Counter("atlas_lens_scored_total", "Candidates the Lens gave an energy", registry=registry)
        self.unscored = Counter("atlas_lens_unscored_total", "Scoring calls the Lens answered with no opinion",
                                ["reason"], registry=registry)
        self.seconds = Histogram("atlas_lens_seconds", "Lens time per call (embedding included)", ["what"],
                                 registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.difficulty = Histogram("atlas_lens_difficulty", "G(x) of the problems solved", registry=registry,
                                    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
        for result in ("loaded", "refused"):
            self.reloads.labels(result)
        for reason in ("no_weights", "embedding_unavailable"):
            self.unscored.labels(reason)


class LiveLens:
    def __init__(self, embedder: EmbeddingClient, store: WeightStore, settings: LensSettings,
                 registry: CollectorRegistry) -> None:
        self.embedder = embedder
        self.store = store
        self.settings = settings
        self.metrics = LensMetrics(registry)
        self.model: LensModel | None = None
        self.version: str | None = None
        self._seen: tuple[int, int] | None = None  # the pointer file last acted on (loaded or refused)

    def refresh(self) -> bool:
        """Load the published version if it is new; True when the live model changed."""
        stamp = self.store.pointer_stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        name = self.store.current()
        if name is None or name == self.version:
            return False
        try:
            model = self.store.load(name)
            trained_on = model.meta.get("features", {}).get("source")
            if trained_on != self.settings.lens_features:
                raise BadWeights(f"trained on {trained_on!r} features; this service embeds with "
                                 f"{self.settings.lens_features!r} (ATLAS_LENS_FEATURES)")
        except BadWeights as exc:
            self.metrics.reloads.labels("refused").inc()
            log.error("lens: refused weights %s: %s; keeping %s", name, exc, self.version or "no weights")
            return False
        self.model, self.version = model, name
        self.metrics.reloads.labels("loaded").inc()
        self.metrics.version.set(int(name[1:]))
        self.metrics.auc.set(float(model.meta.get("validation", {}).get("auc") or 0.0))
        log.info("lens: weights %s live (validation AUC %s)", name, model.meta.get("validation", {}).get("auc"))
        return True

    async def watch(self) -> None:
        """Poll for new weights until cancelled (the loads run off the event loop)."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except OSError as exc:
                log.warning("lens: cannot read the weights directory (%s)", exc.strerror)
            await asyncio.sleep(self.settings.lens_reload_s)

    async def _features(self, texts: list[str], model: LensModel) -> tuple[np.ndarray | None, str]:
        """The texts' embeddings within the Lens's timeout and of the weights' width, or None and why not."""
        try:
            async with asyncio.timeout(self.settings.lens_timeout_s):
                x = await self.embedder.embed(texts)
        except (EmbedUnavailable, TimeoutError) as exc:
            return None, f"embeddings unavailable ({exc or 'timed out'})"
        if x.shape[1] != model.dim:
            return None, f"the embedding server gives {x.shape[1]} dimensions, the weights read {model.dim}"
        return x, ""

    async def score(self, problem_text_: str, codes: list[str]) -> list[float | None]:
        """The engine's Scorer: one energy per program (lower: more likely correct), or None each (no opinion)."""
        model = self.model  # this solve keeps this model, whatever a reload does meanwhile
        if model is None:
            self.metrics.unscored.labels("no_weights").inc()
            return [None] * len(codes)
        started = time.perf_counter()
        source = self.settings.lens_features
        x, why = await self._features([code_text(source, problem_text_, c) for c in codes], model)
        if x is None:
            self.metrics.unscored.labels("embedding_unavailable").inc()
            log.warning("lens: no opinion: %s", why)
            return [None] * len(codes)
        energies = model.energies(x)
        self.metrics.scored.inc(len(codes))
        self.metrics.seconds.labels("score").observe(time.perf_counter() - started)
        return [round(float(e), 4) for e in energies]

    async def difficulty(self, problem: Problem) -> float | None:
        """The engine's Estimator: G(x) on 0 (easy) .. 1 (hard), or None."""
        model = self.model
        if model is None or model.difficulty is None or not self.settings.lens_difficulty:
            return None
        started = time.perf_counter()
        x, _ = await self._features([problem_text(problem.text)], model)
        if x is None:
            return None
        values = model.difficulties(x)
        if values is None or not np.isfinite(values).all():
            return None
        value = round(float(values[0]), 4)
        self.metrics.difficulty.observe(value)
        self.metrics.seconds.labels("difficulty").observe(time.perf_counter() - started)
        return value
