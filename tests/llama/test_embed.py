"""The local embedding server (llama-server B) with the real all-MiniLM-L6-v2 from its PyPI package."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from atlas_llama.embed import Settings, create_app
from atlas_llama.models import default_chat_model, default_embed_model
from tests.conftest import LLAMA_KEY

AUTH = {"Authorization": f"Bearer {LLAMA_KEY}"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings(Settings, environ={"ATLAS_LLAMA_API_KEY": LLAMA_KEY})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_default_models_are_found_in_their_packages() -> None:
    chat = default_chat_model()
    embed = default_embed_model()
    assert chat is not None and chat.read_bytes()[:4] == b"GGUF"
    assert embed is not None and (embed / "model.safetensors").is_file()


def test_embeddings_need_the_api_key(client: TestClient) -> None:
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 401
    assert client.get("/v1/models").status_code == 401
    assert client.get("/health").status_code == 200


def test_embeddings_in_openai_shape(client: TestClient) -> None:
    response = client.post("/v1/embeddings", headers=AUTH, json={"input": ["def add(a, b): return a + b", "hi"]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "all-MiniLM-L6-v2"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 384 for d in body["data"])
    assert body["usage"]["prompt_tokens"] > 4
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == "all-MiniLM-L6-v2"


def test_similar_code_is_closer_than_unrelated_text(client: TestClient) -> None:
    texts = ["def add(a, b): return a + b", "def sum_two(x, y): return x + y", "The weather is sunny in Paris."]
    response = client.post("/v1/embeddings", headers=AUTH, json={"input": texts})
    vectors = [d["embedding"] for d in response.json()["data"]]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        norms: float = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
        return dot / norms

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


def test_base64_encoding_matches_floats(client: TestClient) -> None:
    floats = client.post("/v1/embeddings", headers=AUTH, json={"input": "abc"}).json()["data"][0]["embedding"]
    encoded = client.post("/v1/embeddings", headers=AUTH, json={"input": "abc", "encoding_format": "base64"})
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats, rel=1e-6)


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"input": []}, "input"), ({"input": [""]}, "input"), ({"input": 42}, "input"),
     ({"input": "x", "encoding_format": "hex"}, "encoding_format"), ({}, "input")],
)
def test_bad_input_is_a_400_naming_the_field(client: TestClient, payload: dict[str, object], field: str) -> None:
    response = client.post("/v1/embeddings", headers=AUTH, json=payload)
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith(field)


def test_wrong_dimensions_is_refused(client: TestClient) -> None:
    response = client.post("/v1/embeddings", headers=AUTH, json={"input": "x", "dimensions": 768})
    assert response.status_code == 400
    assert "384" in response.json()["error"]["message"]
