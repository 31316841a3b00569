"""POST /v1/solve through the proxy: sent to rag-api unchanged with the proxy's credential and the caller's
identity, metered from the result's usage, streamed as it comes; the proxy's own checks give clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_cli.main import main
from atlas_core.budget import solve_ceiling
from tests.conftest import PROXY_TOKEN
from tests.proxy.conftest import Stack
from tests.proxy.fake_upstream import SOLVE_RESULT, SOLVE_USAGE

PROBLEM: dict[str, Any] = {"problem": "Write add(a, b).", "tests": [{"assert": "assert add(2, 3) == 5"}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def usage_rows(stack: Stack, key_id: int, requests: int) -> list[dict[str, Any]]:
    """The portal's usage rows for a key, once it has rolled up ``requests`` requests."""
    deadline = time.monotonic() + 10
    while True:
        usage: dict[str, Any] = httpx.get(f"{stack.portal}/api/usage", headers=stack.admin).json()
        rows = [r for r in usage["rows"] if r["key_id"] == key_id]
        if sum(r["requests"] for r in rows) >= requests:
            return rows
        assert time.monotonic() < deadline, usage
        time.sleep(0.1)


def events(raw: bytes) -> list[bytes]:
    return [event for event in raw.split(b"\n\n") if event]


def test_solve_reaches_rag_api_unchanged_with_the_callers_identity_and_is_metered(stack: Stack) -> None:
    created = stack.key()
    raw = json.dumps(PROBLEM).encode()
    response = httpx.post(f"{stack.proxy}/v1/solve", content=raw,
                          headers=bearer(created["key"]) | {"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == SOLVE_RESULT
    seen = stack.rag.state.requests[-1]
    assert seen["path"] == "/v1/solve" and seen["raw"] == raw  # no model filled in: rag-api ignores it
    assert seen["headers"]["authorization"] == f"Bearer {PROXY_TOKEN}"
    assert seen["headers"]["x-atlas-key-id"] == str(created["id"])
    assert seen["headers"]["x-atlas-user-id"] == str(created["user_id"])

    with httpx.stream("POST", f"{stack.proxy}/v1/solve", json=PROBLEM | {"stream": True, "model": "atlas"},
                      headers=bearer(created["key"]) | {"X-Request-Id": "solve-7"}) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.headers["x-request-id"] == "solve-7"
        raw_events = events(streamed.read())
    assert raw_events[2:] == [b": keep-alive", raw_events[3], b"data: [DONE]"]
    assert [json.loads(e.removeprefix(b"data: "))["stage"] for e in raw_events[:2]] == ["generate", "verify"]
    assert json.loads(raw_events[3].removeprefix(b"data: ")) == {"type": "result", "result": SOLVE_RESULT,
                                                                 "usage": SOLVE_USAGE}

    rows = usage_rows(stack, created["id"], 2)
    assert [(r["model"], r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("atlas", 2, 2 * SOLVE_USAGE["prompt_tokens"], 2 * SOLVE_USAGE["completion_tokens"])]


def test_the_budget_is_reserved_against_tokens_per_minute(stack: Stack) -> None:
    one = {"k": 1, "max_tokens": 60, "repair_rounds": 0, "self_tests": False}
    ceiling = solve_ceiling(k=1, max_tokens=60, repair_rounds=0, self_tests=False,
                            prompt_chars=len(PROBLEM["problem"]) + len(json.dumps(PROBLEM["tests"])))
    key = bearer(stack.key(tokens_per_min=ceiling)["key"])
    too_big = httpx.post(f"{stack.proxy}/v1/solve", headers=key, json=PROBLEM | {"budget": one | {"k": 2}})
    assert too_big.status_code == 429 and "lower max_tokens or the budget" in too_big.json()["error"]["message"]
    fits = httpx.post(f"{stack.proxy}/v1/solve", headers=key, json=PROBLEM | {"budget": one})
    assert fits.status_code == 200, fits.text
    # rag-api is told the reservation: the solve never spends more than it
    assert stack.rag.state.requests[-1]["headers"]["x-atlas-token-cap"] == str(ceiling)


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [({"tests": []}, 400, "problem", "'problem' is required"),
     ({"problem": ""}, 400, "problem", "'problem' is required"),
     ({"problem": " \n"}, 400, "problem", "'problem' is required"),
     ({"problem": ["Write add."]}, 400, "problem", "'problem' is required"),
     (PROBLEM | {"budget": {"k": "two"}}, 400, "budget.k", "'budget.k' must be an integer"),
     (PROBLEM | {"budget": []}, 400, "budget", "'budget' must be an object"),
     (PROBLEM | {"model": "fake-chat"}, 400, "model", "'fake-chat' does not run the verified pipeline"),
     (PROBLEM | {"model": "fake-embed"}, 400, "model", "/v1/solve takes model 'atlas'"),
     (PROBLEM | {"model": "nope"}, 404, "model", "does not exist"),
     (PROBLEM | {"problem": "refuse"}, 400, "language", "'language' must be one of")],  # rag-api's own 400
)
def test_bad_solves_get_clear_openai_errors(stack: Stack, body: dict[str, Any], status: int, param: str,
                                            message: str) -> None:
    response = httpx.post(f"{stack.proxy}/v1/solve", json=body, headers=bearer(stack.key()["key"]))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"]


def test_keys_without_atlas_or_unknown_or_missing_are_refused(stack: Stack) -> None:
    requests = len(stack.rag.state.requests)
    restricted = httpx.post(f"{stack.proxy}/v1/solve", json=PROBLEM,
                            headers=bearer(stack.key(allowed_models=["fake-chat"])["key"]))
    assert restricted.status_code == 403 and "may not use the model 'atlas'" in restricted.json()["error"]["message"]
    unknown = httpx.post(f"{stack.proxy}/v1/solve", json=PROBLEM, headers=bearer("sk-llm-" + "x" * 43))
    assert unknown.status_code == 401
    missing = httpx.post(f"{stack.proxy}/v1/solve", json=PROBLEM)
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]["message"]
    assert len(stack.rag.state.requests) == requests  # none of them reached rag-api


def test_atlas_solve_reads_the_relayed_stream(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no ./atlas.conf
    (tmp_path / "problem.txt").write_text(PROBLEM["problem"])
    with pytest.raises(SystemExit) as exited:
        main(["solve", "problem.txt", "--url", f"{stack.proxy}/v1", "--api-key", stack.key()["key"]])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    assert out == SOLVE_RESULT["code"]
    assert err.splitlines() == ["generate: generate…", "verify: verify…", SOLVE_RESULT["summary"]]
