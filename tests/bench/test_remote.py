"""``atlas bench run --url https://<ingress>/v1`` against a platform on another machine: the problems go to its proxy
with the public tests only, and the hidden tests are scored in a sandbox atlas-bench starts on this machine, so
they never reach the platform under test.

The "remote" platform is a recording fake proxy on 127.0.0.2: loopback, so the test needs no network, but not an
address atlas-bench counts as this machine's (``atlas_bench.access.is_local``)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from atlas_bench.__main__ import main
from atlas_bench.access import own_sandbox, shares_host
from tests.conftest import ServerThread

KEY = "sk-llm-" + "r" * 43
GOOD = "def add(a, b):\n    return a + b\n"
# Passes the public test and nothing else: only the hidden tests can tell it from GOOD.
TRAP = "def add(a, b):\n    return 3\n"
HIDDEN_MARK = "hidden-7f3a9c"  # in every hidden test, in no prompt or public test
PROBLEMS = [
    {"id": "add-good", "prompt": "Write add(a, b).", "entry_point": "add",
     "public_tests": [{"assert": "assert add(1, 2) == 3"}],
     "hidden": {"mode": "assert", "tests": [{"code": f"assert add(40, 2) == 42  # {HIDDEN_MARK}"}]}},
    {"id": "add-trap", "prompt": "Write add(a, b), again.", "entry_point": "add",
     "public_tests": [{"assert": "assert add(1, 2) == 3"}],
     "hidden": {"mode": "assert", "tests": [{"code": "assert add(1, 2) == 3"},
                                            {"code": f"assert add(5, 5) == 10  # {HIDDEN_MARK}"}]}},
    {"id": "echo", "prompt": "Print the input line.", "public_tests": [{"input": "x\n", "output": "x\n"}],
     "hidden": {"mode": "stdin", "tests": [{"input": f"{HIDDEN_MARK}\n", "output": f"{HIDDEN_MARK}\n"}]}},
]


class RemoteServer(ServerThread):
    """ServerThread on 127.0.0.2."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(app)
        self.server.config.host = "127.0.0.2"
        self.url = f"http://127.0.0.2:{self.port}"


def recording_proxy() -> FastAPI:
    """Answers /v1/solve as rag-api would (GOOD, or TRAP for 'again'); keeps every request it gets, raw."""
    app = FastAPI()
    app.state.requests = []

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        body = await request.body()
        app.state.requests.append({"path": request.url.path, "body": body.decode(),
                                   "headers": dict(request.headers)})
        return await call_next(request)

    @app.post("/v1/solve")
    async def solve(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, 401)
        body = await request.json()
        code = "print(input())" if "Print" in body["problem"] else TRAP if "again" in body["problem"] else GOOD
        return {"code": code, "verified": True, "repair_rounds": 0,
                "candidates": [{"origin": "sample", "code": code}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, "timings": {}}

    return app


@pytest.fixture
def remote() -> Iterator[RemoteServer]:
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    server = RemoteServer(recording_proxy())
    with server:
        yield server


def bench(*args: str) -> int:
    with pytest.raises(SystemExit) as ended:
        main(["run", *args])
    return int(ended.value.code or 0)


@pytest.mark.parametrize(("url", "sandbox_url", "signing", "own"), [
    ("https://atlas.example.com/v1", None, "a-signing-key", True),  # a cluster: never its sandbox
    ("https://atlas.example.com/v1", "http://127.0.0.1:8020", "a-signing-key", False),  # named: that one
    ("http://127.0.0.1:8000", None, "a-signing-key", False),  # beside atlas up: its sandbox
    ("http://127.0.0.1:8000", None, None, True),  # a port-forward, no signing key: one of its own
])
def test_when_atlas_bench_starts_a_sandbox_of_its_own(url: str, sandbox_url: str | None, signing: str | None,
                                                      own: bool) -> None:
    assert own_sandbox(url, sandbox_url, signing) is own


def test_a_sandbox_on_the_platforms_host_is_refused(remote: RemoteServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert shares_host("https://atlas.example.com/v1", "https://atlas.example.com/sandbox")
    assert not shares_host("http://127.0.0.1:8000", "http://127.0.0.1:8020")  # atlas up: both on this machine
    monkeypatch.setenv("ATLAS_SANDBOX_SIGNING_KEY", "s" * 43)
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps(PROBLEMS[0]) + "\n")
    assert bench("--file", str(data), "--out", str(tmp_path / "out"), "--url", f"{remote.url}/v1",
                 "--api-key", KEY, "--sandbox-url", f"http://127.0.0.2:{remote.port + 1}",
                 "--state-dir", str(tmp_path / "state")) == 2
    assert "the hidden tests would go to it" in capsys.readouterr().err
    assert remote.server.config.app.state.requests == []  # type: ignore[union-attr]


def test_against_a_remote_platform_hidden_tests_stay_in_a_local_sandbox(
        remote: RemoteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    monkeypatch.setenv("ATLAS_API_KEY", KEY)  # the key from the environment, as on a laptop
    # A signing key in the environment (the cluster's, say) changes nothing: a remote platform's sandbox is never
    # the one that scores.
    monkeypatch.setenv("ATLAS_SANDBOX_SIGNING_KEY", "c" * 43)
    out = tmp_path / "out"
    assert bench("--file", str(data), "--out", str(out), "--url", f"{remote.url}/v1",
                 "--state-dir", str(tmp_path / "state"), "--ablations", "baseline,public", "--k", "2") == 0

    requests: list[dict[str, Any]] = remote.server.config.app.state.requests  # type: ignore[union-attr]
    assert len(requests) == len(PROBLEMS) * 2
    assert {r["path"] for r in requests} == {"/v1/solve"}  # nothing but solves: no /judge, no /execute
    assert all(HIDDEN_MARK not in r["body"] for r in requests)
    sent = [json.loads(r["body"]) for r in requests]
    assert all(body["tests"] in ([{"assert": "assert add(1, 2) == 3"}], [{"input": "x\n", "output": "x\n"}])
               for body in sent)

    # Scored all the same, on the hidden tests: the trap passes its public test but not them.
    tasks = {t["id"]: t for t in map(json.loads, (out / "tasks.jsonl").read_text().splitlines())}
    for ablation in ("baseline", "public"):
        assert tasks["add-good"]["ablations"][ablation]["passed"]
        assert tasks["echo"]["ablations"][ablation]["passed"]
        trap = tasks["add-trap"]["ablations"][ablation]
        assert not trap["passed"] and trap["verdict"] == "TestFailure"

    # in a sandbox started on this machine, stopped when the run ended
    err = capsys.readouterr().err
    started = re.search(r"sandbox started on this machine \(http://127\.0\.0\.1:(\d+)\)", err)
    assert started, err
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", int(started.group(1))))
