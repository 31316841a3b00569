"""`atlas solve` against a fake llm-proxy on loopback: the request it sends, progress and summary on stderr, the
code alone on stdout, and an exit status for each outcome."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from atlas_cli.main import main
from tests.conftest import ServerThread, free_port

KEY = "sk-llm-" + "c" * 43
CODE = "def add(a, b):\n    return a + b\n"


def event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def fake_proxy() -> FastAPI:
    """Answers like llm-proxy in front of rag-api. The problem text picks the outcome: "unverified" gets an
    unverified answer, "crash" an error event, "silent" a stream that ends without a result."""
    app = FastAPI()
    app.state.bodies = []

    @app.post("/v1/solve")
    async def solve(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "invalid API key", "type": "authentication_error",
                                           "param": None, "code": None}}, 401)
        body = await request.json()
        app.state.bodies.append(body)
        problem, verified = body["problem"], "unverified" not in body["problem"]
        result = {"id": "solve-1", "code": CODE, "language": body.get("language", "python"), "verified": verified,
                  "status": "passed" if verified else "failed",
                  "summary": "verified: 2/2 tests pass" if verified else "not verified: 1/2 tests pass",
                  "usage": {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}}

        async def events() -> AsyncIterator[bytes]:
            yield event({"type": "progress", "stage": "generate", "message": "2 candidates", "elapsed_s": 0.1})
            yield b": keep-alive\n\n"
            yield event({"type": "progress", "stage": "verify", "message": "running 2 tests"})
            if "crash" in problem:
                yield event({"type": "error", "error": {"message": "llama-server went away", "type": "server_error"}})
            elif "silent" not in problem:
                yield event({"type": "result", "result": result, "usage": result["usage"]})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[FastAPI, str]]:
    app = fake_proxy()
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture
def workdir(platform_env: dict[str, str], proxy: tuple[FastAPI, str], monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Path:
    """A clean environment (no ATLAS_* but the test platform's) whose configured proxy port is the fake's."""
    monkeypatch.setenv("ATLAS_PROXY_PORT", proxy[1].rsplit(":", 1)[1])
    (tmp_path / "problem.txt").write_text("Write add(a, b) that returns the sum.\n")
    return tmp_path


def atlas(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["solve", *args])
    return int(exited.value.code or 0)


def test_verified_solve_prints_the_code_alone_on_stdout(workdir: Path, proxy: tuple[FastAPI, str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    state = workdir / "state"
    state.mkdir()
    (state / "admin.json").write_text(json.dumps({"username": "admin", "key": KEY}))  # as `atlas up` keeps it
    (workdir / "tests.py").write_text('"""Tests for add."""\nassert add(2, 3) == 5\n\nassert add(-1,\n  1) == 0\n')
    code = atlas("problem.txt", "--tests", "tests.py", "--k", "2", "--max-tokens", "256", "--no-self-tests",
                 "--seed", "7", "--entry-point", "add", "--deadline", "30")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == CODE
    assert err.splitlines() == ["generate: 2 candidates", "verify: running 2 tests", "verified: 2/2 tests pass"]
    assert proxy[0].state.bodies[-1] == {
        "problem": "Write add(a, b) that returns the sum.\n", "language": "python", "entry_point": "add", "seed": 7,
        "tests": [{"assert": "assert add(2, 3) == 5"}, {"assert": "assert add(-1,\n  1) == 0"}],
        "budget": {"k": 2, "max_tokens": 256, "deadline_s": 30.0, "self_tests": False}, "stream": True}


def test_stdin_problem_json_tests_and_json_output(workdir: Path, proxy: tuple[FastAPI, str],
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "tests.json").write_text(json.dumps({"tests": [{"input": "1 2\n", "output": "3\n"},
                                                              {"args": [1, 2], "expected": 3}]}))
    monkeypatch.setattr("sys.stdin", io.StringIO("Read two numbers, print the sum."))
    monkeypatch.setenv("ATLAS_API_KEY", KEY)
    code = atlas("-", "--tests", "tests.json", "--language", "c", "--json", "--url", f"{proxy[1]}/v1/")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["code"] == CODE and json.loads(out)["language"] == "c"
    assert proxy[0].state.bodies[-1]["tests"] == [{"input": "1 2\n", "output": "3\n"}, {"args": [1, 2], "expected": 3}]
    assert "budget" not in proxy[0].state.bodies[-1]  # unset: rag-api's defaults


def test_unverified_answer_still_prints_the_code_and_exits_1(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "problem.txt").write_text("an unverified problem")
    assert atlas("problem.txt", "--api-key", KEY) == 1
    out, err = capsys.readouterr()
    assert out == CODE and err.splitlines()[-1] == "not verified: 1/2 tests pass"


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [({"t.py": "assert add(1, 1) == 2\nfrom solution import add\n"}, ["--tests", "t.py"],
      "t.py:2: only top-level assert statements"),
     ({"t.py": "assert add(1, 1) ==\n"}, ["--tests", "t.py"], "t.py:1: not valid Python"),
     ({"t.py": "# nothing yet\n"}, ["--tests", "t.py"], "t.py has no assert statements"),
     ({"t.json": "[{\"assert\": 1,}]"}, ["--tests", "t.json"], "t.json is not valid JSON"),
     ({"t.json": "{\"cases\": []}"}, ["--tests", "t.json"], "must hold a list of tests"),
     ({"t.json": "[{\"stdin\": \"1\"}]"}, ["--tests", "t.json"], "t.json: test 1 must be one of"),
     ({}, ["--tests", "missing.json"], "cannot read the tests file missing.json: No such file"),
     ({"empty.txt": " \n"}, [], "the problem file empty.txt is empty")],
)
def test_bad_input_files_exit_2_naming_the_problem(workdir: Path, proxy: tuple[FastAPI, str],
                                                   capsys: pytest.CaptureFixture[str], files: dict[str, str],
                                                   args: list[str], message: str) -> None:
    for name, text in files.items():
        (workdir / name).write_text(text)
    sent = len(proxy[0].state.bodies)
    problem = "empty.txt" if "empty.txt" in files else "problem.txt"
    assert atlas(problem, *args, "--api-key", KEY) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("atlas: error: ") and message in err and "Traceback" not in err
    assert len(proxy[0].state.bodies) == sent


def test_no_problem_file_or_no_key_exits_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert atlas("nope.txt", "--api-key", KEY) == 2
    assert "cannot read the problem file nope.txt" in capsys.readouterr().err
    assert atlas("problem.txt") == 2
    assert "no API key: pass --api-key, set ATLAS_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("problem", "args", "message"),
    [("add", ["--api-key", "sk-llm-" + "x" * 43], "the platform answered 401: invalid API key"),
     ("crash", ["--api-key", KEY], "the solve failed: llama-server went away"),
     ("silent", ["--api-key", KEY], "the platform ended the stream without a result"),
     ("add", ["--api-key", KEY, "--url", f"http://127.0.0.1:{free_port()}"], "llm-proxy is not reachable at")],
)
def test_platform_errors_exit_3_with_the_message(workdir: Path, capsys: pytest.CaptureFixture[str], problem: str,
                                                 args: list[str], message: str) -> None:
    (workdir / "problem.txt").write_text(problem)
    assert atlas("problem.txt", *args) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1].startswith(f"atlas: error: {message}")
    assert "Traceback" not in err
