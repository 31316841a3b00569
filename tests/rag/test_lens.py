"""The Lens inside rag-api, with the real embedding server (all-MiniLM-L6-v2): published weights score every
candidate and estimate difficulty, a request can turn the Lens off, and a user with learning on leaves one
record per solve in Redis while others leave none."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from atlas_core.settings import load_settings
from atlas_lens import TrainConfig, WeightStore, lens_dir, train_energy
from atlas_lens.feedback import records_key
from atlas_lens.train import train_difficulty
from atlas_llama.embed import Settings as EmbedSettings
from atlas_llama.embed import create_app as embed_app
from atlas_rag.app import create_app
from atlas_rag.settings import Settings
from tests.conftest import LLAMA_KEY, METRICS_TOKEN, PROXY_TOKEN, RedisServer, ServerThread
from tests.rag.fake_llm import fake, fenced

ADD = "Write a Python function add(a, b) that returns the sum.\n>>> add(2, 3)\n5\n"
DIM = 384


@pytest.fixture(scope="module")
def embed_url() -> Iterator[str]:
    settings = load_settings(EmbedSettings, environ={"ATLAS_LLAMA_API_KEY": LLAMA_KEY})
    with ServerThread(embed_app(settings)) as server:
        yield server.url


def publish(state: Path) -> None:
    """Weights over 384-dim features (random data: what they say is not the point here, that they are used)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (240, DIM)).astype(np.float32)
    y = (rng.random(240) < 0.4).astype(np.int64)
    tasks = [f"t{i // 6}" for i in range(240)]
    model, report, _ = train_energy(x, y, tasks, TrainConfig(epochs=3, patience=3))
    hard = np.where(rng.random(40) < 0.5, 1.0, 0.0)
    fitted = train_difficulty(x[:40], hard, [f"t{i}" for i in range(40)], TrainConfig(epochs=3))
    assert fitted is not None
    model.difficulty, model.difficulty_norm, _ = fitted
    WeightStore(lens_dir(state)).publish(model, {"features": {"source": "embed", "dim": DIM},
                                                 "validation": {"auc": report.validation_auc}})


@pytest.fixture
def rag(service_env: dict[str, str], llm: ServerThread, sandbox_url: str, embed_url: str, tmp_path: Path
        ) -> Iterator[httpx.Client]:
    publish(tmp_path)
    env = service_env | {"ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url, "ATLAS_EMBED_URL": embed_url,
                         "ATLAS_STATE_DIR": str(tmp_path), "ATLAS_LENS_LEARN": "listed"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {PROXY_TOKEN}", "X-Atlas-User-Id": user}


def test_live_weights_score_candidates_and_learning_is_per_user(rag: httpx.Client, llm: ServerThread,
                                                                redis_server: RedisServer) -> None:
    def script(body: dict[str, object]) -> str:  # distinct programs (comments alone would make them one)
        return fenced(f"def add(a, b):\n    return a + b + {body.get('seed')} - {body.get('seed')}")

    fake(llm).script = script
    with redis_server.client() as r:
        r.delete(records_key("41"), records_key("42"))
        r.sadd("atlas:lens:learn", "41")
    body = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 3}}, headers=auth("41")).json()
    assert all(isinstance(c["score"], float) for c in body["candidates"])
    assert 0.0 <= body["difficulty"] <= 1.0 and body["lens_changed_pick"] in (True, False)
    off = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 3, "lens": False}}, headers=auth("42")).json()
    assert all(c["score"] is None for c in off["candidates"]) and off["lens_changed_pick"] is None
    with redis_server.client() as r:
        for _ in range(100):  # the record is written after the answer
            if r.llen(records_key("41")):
                break
            time.sleep(0.05)
        [raw] = r.lrange(records_key("41"), 0, -1)
        assert r.llen(records_key("42")) == 0  # user 42 is not listed
        r.srem("atlas:lens:learn", "41")
    record = json.loads(raw)
    assert record["problem"] == ADD and record["features"] == {"source": "embed", "dim": DIM}
    assert sum(c["selected"] for c in record["candidates"]) == 1
    metrics = rag.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'atlas_lens_weights_version 1.0' in metrics
    assert 'atlas_lens_feedback_total{result="recorded"} 1.0' in metrics
