"""The Lens in a running service: scoring, refusing bad weights with the old ones kept live, no opinion when it
cannot see, and new weights taken up under concurrent solves without losing any."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client import CollectorRegistry

from atlas_core.settings import load_settings
from atlas_engine import Budget, Engine, EngineConfig, LLMClient, SandboxClient, SolveRequest
from atlas_lens import EmbeddingClient, LensSettings, LiveLens, WeightStore
from atlas_lens.store import WEIGHTS
from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING, ServerThread
from tests.lens.helpers import DIM, TextEmbedder, trained
from tests.rag.fake_llm import fake, fenced

META = {"features": {"source": "embed", "dim": DIM}, "validation": {"auc": 0.93}}
ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"


def settings(tmp_path: Path, **extra: str) -> LensSettings:
    env = {"ATLAS_STATE_DIR": str(tmp_path), "ATLAS_LLAMA_API_KEY": LLAMA_KEY, "ATLAS_METRICS_TOKEN": "m" * 32,
           "ATLAS_PORT": "1", "ATLAS_HOST": "127.0.0.1", **extra}
    return load_settings(LensSettings, environ=env, conf_file=None, read_conf_file=False)


def live(tmp_path: Path, embedder: TextEmbedder | None = None, **extra: str) -> tuple[LiveLens, WeightStore]:
    s = settings(tmp_path, **extra)
    store = WeightStore(tmp_path / "lens")
    return LiveLens(cast(EmbeddingClient, embedder or TextEmbedder()), store, s, CollectorRegistry()), store


def sample(lens: LiveLens, name: str, **labels: str) -> float | None:
    return lens.metrics.registry.get_sample_value(name, labels)


def test_scores_order_right_code_first_and_no_weights_means_no_opinion(tmp_path: Path) -> None:
    lens, store = live(tmp_path)
    assert asyncio.run(lens.score("p", ["x = 1", "y = 2"])) == [None, None]
    store.publish(trained(), META)
    assert lens.refresh() and lens.version == "v0001"
    right, wrong = asyncio.run(lens.score("p", ["# right\nx = 1", "# wrong\nx = 2"]))
    assert right is not None and wrong is not None and right < wrong
    assert sample(lens, "atlas_lens_weights_version") == 1
    assert sample(lens, "atlas_lens_validation_auc") == pytest.approx(0.93)
    assert sample(lens, "atlas_lens_scored_total") == 2


def test_an_embedding_server_that_is_down_gives_no_opinion(tmp_path: Path) -> None:
    embedder = TextEmbedder()
    lens, store = live(tmp_path, embedder)
    store.publish(trained(), META)
    lens.refresh()
    embedder.down = True
    assert asyncio.run(lens.score("p", ["a", "b"])) == [None, None]
    assert asyncio.run(lens.difficulty(cast(Any, type("P", (), {"text": "p"})()))) is None


def test_corrupt_weights_are_refused_with_a_log_line_and_the_old_stay_live(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    lens, store = live(tmp_path)
    store.publish(trained(), META)
    lens.refresh()
    before = asyncio.run(lens.score("p", ["# right", "# wrong"]))
    bad = store.publish(trained(seed=1), META)
    path = store.versions_dir / bad / WEIGHTS
    path.write_bytes(b"garbage" + path.read_bytes()[7:])
    with caplog.at_level(logging.ERROR, logger="atlas.lens"):
        assert not lens.refresh()
    assert lens.version == "v0001"
    assert any("refused weights v0002" in r.getMessage() and "sha256" in r.getMessage()
               and "keeping v0001" in r.getMessage() for r in caplog.records)
    assert asyncio.run(lens.score("p", ["# right", "# wrong"])) == before
    assert sample(lens, "atlas_lens_reloads_total", result="refused") == 1
    assert not lens.refresh()  # the same pointer is not retried at every poll
    assert sample(lens, "atlas_lens_reloads_total", result="refused") == 1


def test_weights_trained_on_other_features_are_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lens, store = live(tmp_path)
    store.publish(trained(), {**META, "features": {"source": "main", "dim": DIM}})
    with caplog.at_level(logging.ERROR, logger="atlas.lens"):
        assert not lens.refresh()
    assert lens.model is None and "trained on 'main' features" in caplog.text


def test_new_weights_go_live_under_concurrent_solves_and_no_solve_is_lost(tmp_path: Path, llm: ServerThread,
                                                                          sandbox_url: str) -> None:
    """Twelve solves at once, while a trainer publishes new weights mid-generation (one version corrupt) and the
    watcher polls every 0.5 s: every solve answers with energies, the corrupt version is refused, and the
    newest good one ends live."""
    lens, store = live(tmp_path, ATLAS_LENS_RELOAD_S="0.5")
    store.publish(trained(), META)
    lens.refresh()
    models = {4: trained(seed=1), 12: trained(seed=2), 20: trained(seed=3)}
    calls = [0]

    def script(body: dict[str, Any]) -> str:
        calls[0] += 1
        model = models.pop(calls[0], None)
        if model is not None:  # a trainer publishing while solves are generating
            name = store.publish(model, META)
            if name == "v0003":
                p = store.versions_dir / name / WEIGHTS
                p.write_bytes(p.read_bytes()[:-4] + b"\x00\x00\x00\x00")
            if name != "v0004":
                lens.refresh()  # v0004 is left to the watcher
        right = int(body.get("seed", 0)) % 2
        return fenced(f"def add(a, b):\n    # {'right' if right else 'wrong'}\n    return a {'+' if right else '-'} b")

    fake(llm).script = script

    async def main() -> list[Any]:
        async with httpx.AsyncClient() as http:
            engine = Engine(LLMClient(http, llm.url, LLAMA_KEY, parallel=8), SandboxClient(http, sandbox_url,
                            SANDBOX_SIGNING), EngineConfig(self_tests=False, repair_rounds=0), scorer=lens)
            watcher = asyncio.create_task(lens.watch())
            try:
                requests = [SolveRequest(problem=ADD, seed=10 * i, budget=Budget(k=3)) for i in range(12)]
                results = list(await asyncio.gather(*(engine.solve(r) for r in requests)))
                for _ in range(40):  # the watcher takes v0004 up within a poll or two
                    if lens.version == "v0004":
                        break
                    await asyncio.sleep(0.1)
                return results
            finally:
                watcher.cancel()

    results = asyncio.run(main())
    assert len(results) == 12
    assert all(r.status == "passed" for _, r in results)
    assert all(any(c.score is not None for c in r.candidates) for _, r in results)
    assert lens.version == "v0004"
    assert sample(lens, "atlas_lens_reloads_total", result="refused") == 1
    assert sample(lens, "atlas_lens_reloads_total", result="loaded") == 3  # v0001, v0002, v0004
