"""``atlas-bench run`` against a scripted proxy (it answers /v1/solve as rag-api would) and the real sandbox:
what it sends (only what a user has), one hidden-test score per ablation, the reports, and resuming."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from atlas_bench.__main__ import build_parser, main
from tests.conftest import REPO, SANDBOX_SIGNING, ServerThread

KEY = "sk-llm-" + "b" * 43
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
PROBLEMS = [
    {"id": "add-1", "prompt": "Write add(a, b).", "entry_point": "add",
     "public_tests": [{"assert": "assert add(1, 2) == 3"}],
     "hidden": {"mode": "assert", "tests": [{"code": "assert add(2, 2) == 4"}, {"code": "assert add(-1, 1) == 0"}]}},
    {"id": "add-2", "prompt": "Write add(a, b) (the public test is all the model sees).", "entry_point": "add",
     "public_tests": [], "hidden": {"mode": "assert", "tests": [{"code": "assert add(5, 5) == 10"}]}},
    {"id": "echo", "prompt": "Print the input.", "public_tests": [{"input": "x\n", "output": "x\n"}],
     "hidden": {"mode": "stdin", "tests": [{"input": "hello\n", "output": "hello\n"}]}},
]


def fake_proxy() -> FastAPI:
    """k = 1 answers a wrong program; best-of-k a right one from samples of which one in three is wrong (so the
    ablations, the random pick and pass@k differ); 'echo' always prints."""
    app = FastAPI()
    app.state.bodies = []

    @app.post("/v1/solve")
    async def solve(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, 401)
        body = await request.json()
        app.state.bodies.append(body)
        k = body["budget"]["k"]
        if "Print" in body["problem"]:
            code, samples = "print(input())", ["print(input())"]
        else:
            code, samples = (WRONG, [WRONG]) if k == 1 else (GOOD, [WRONG] + [GOOD] * (k - 1))
        return {"code": code, "verified": True, "repair_rounds": 0,
                "candidates": [{"origin": "sample", "code": c} for c in samples] + [{"origin": "repair", "code": GOOD}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
                # a platform that counts the sandbox's runs only where plans are asked for: both kinds are handled
                "timings": {"sandbox_calls": 2, "llm_calls": k} | ({"sandbox_runs": 9} if "plans" in body["budget"]
                                                                   else {})}

    return app


@pytest.fixture
def proxy() -> Iterator[ServerThread]:
    with ServerThread(fake_proxy()) as server:
        yield server


def bench(*args: str) -> int:
    with pytest.raises(SystemExit) as ended:
        main(["run", *args])
    return int(ended.value.code or 0)


def test_a_run_scores_each_ablation_once_and_resumes(proxy: ServerThread, sandbox_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    monkeypatch.setenv("ATLAS_SANDBOX_SIGNING_KEY", SANDBOX_SIGNING)
    out = tmp_path / "out"
    common = ["--file", str(data), "--out", str(out), "--url", f"{proxy.url}/v1", "--api-key", KEY,
              "--sandbox-url", sandbox_url, "--ablations", "baseline,public", "--k", "3"]
    assert bench(*common, "--limit", "2") == 0
    bodies = proxy.server.config.app.state.bodies  # type: ignore[union-attr]
    assert len(bodies) == 4  # two problems x two ablations
    assert all("hidden" not in json.dumps(b) and "add(2, 2)" not in json.dumps(b) for b in bodies)
    assert bodies[0]["tests"] == [{"assert": "assert add(1, 2) == 3"}] and bodies[0]["budget"]["k"] == 1

    assert bench(*common) == 0  # the third problem only: the first two are on disk
    assert len(bodies) == 6
    lines = (out / "tasks.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["add-1", "add-2", "echo"]
    results = json.loads((out / "results.json").read_text())
    assert results["ablations"]["baseline"]["selected@1"] == 0.3333  # only echo passes with k = 1
    assert results["ablations"]["public"]["selected@1"] == 1.0
    assert results["ablations"]["public"]["tokens_per_task"] == 30
    assert results["ablations"]["public"]["sandbox_calls_per_task"] == 2
    # the repair candidate is not a sample; echo's one sample passes: (1/3 + 1/3 + 1) / 3 of the samples
    assert results["ablations"]["public"]["random_pick"] == round((2 / 3 + 2 / 3 + 1) / 3, 4)
    assert results["ablations"]["public"]["pass@k"] == 1.0
    assert results["ablations"]["baseline"]["pass@k"] == 0.3333
    assert "| public | 3 | 100.0% |" in (out / "report.md").read_text()
    assert "sandbox runs" not in (out / "report.md").read_text()  # the platform did not report them
    assert results["config"]["send_tests"] == "public" and results["config"]["extra"]["testtype"] is None
    assert all((out / png).stat().st_size > 1000 for png in ("pass_rates.png", "tokens_vs_pass.png", "difficulty.png"))

    (out / "tasks.jsonl").write_text("\n".join(lines[:2]) + '\n{"id": "echo", "se')  # killed mid-write
    assert bench(*common) == 0
    assert len(bodies) == 8 and json.loads((out / "results.json").read_text())["tasks"] == 3


def test_plans_without_sent_tests_on_stdin_problems_only(proxy: ServerThread, sandbox_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The options the next benchmarks need: the plans ablation, no tests sent (the public tests then only score),
    one kind of problem; the config records them and the report says so."""
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    monkeypatch.setenv("ATLAS_SANDBOX_SIGNING_KEY", SANDBOX_SIGNING)
    out = tmp_path / "out"
    assert bench("--file", str(data), "--out", str(out), "--url", proxy.url, "--api-key", KEY, "--sandbox-url",
                 sandbox_url, "--ablations", "self,plans", "--k", "3", "--plans", "2", "--send-tests", "none",
                 "--testtype", "stdin") == 0
    bodies = proxy.server.config.app.state.bodies  # type: ignore[union-attr]
    assert [b["problem"] for b in bodies] == ["Print the input."] * 2  # echo only
    assert all(b["tests"] == [] for b in bodies)
    assert bodies[0]["budget"] == {"k": 3, "self_tests": True, "repair_rounds": 0, "max_tokens": 512, "lens": False,
                                   "learn": False, "patterns": False}
    assert bodies[1]["budget"] == {"k": 3, "self_tests": True, "repair_rounds": 0, "max_tokens": 512, "lens": False,
                                   "learn": False, "patterns": False, "plans": 2}
    task = json.loads((out / "tasks.jsonl").read_text())
    assert task["ablations"]["plans"]["sandbox_runs"] == 9 and task["ablations"]["self"]["sandbox_runs"] is None
    results = json.loads((out / "results.json").read_text())
    config = results["config"]
    assert (config["ablations"], config["plans"], config["send_tests"]) == (["self", "plans"], 2, "none")
    assert config["extra"]["testtype"] == "stdin" and config["extra"]["problems"] == ["echo"]
    assert results["ablations"]["plans"]["sandbox_runs_per_task"] == 9
    assert results["ablations"]["self"]["sandbox_runs_per_task"] is None
    report = (out / "report.md").read_text()
    assert "2 of the k candidates written from distinct plans" in report and "only the problems with stdin" in report
    assert "The platform saw the prompt only (no tests sent)" in report
    assert "| plans | 1 | 100.0% |" in report and report.count("| 2.0 | 9.0 |") == 1  # calls, then runs

    with pytest.raises(SystemExit) as ended:
        main(["run", "--out", str(out), "--k", "3", "--plans", "4", "--ablations", "plans"])
    assert ended.value.code == 2


def test_a_run_without_credentials_says_what_to_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ATLAS_API_KEY", raising=False)
    monkeypatch.delenv("ATLAS_SANDBOX_SIGNING_KEY", raising=False)
    assert bench("--out", str(tmp_path / "o"), "--state-dir", str(tmp_path)) == 2
    assert "--api-key" in capsys.readouterr().err


def test_beside_atlas_up_the_key_secrets_and_urls_come_from_its_state_directory(
        proxy: ServerThread, sandbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``atlas up`` leaves in its state directory is enough, on whatever ports it started the platform."""
    for name in ("ATLAS_API_KEY", "ATLAS_SANDBOX_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    (state / "admin.json").write_text(json.dumps({"key": KEY}))
    (state / "secrets.env").write_text(f"ATLAS_SANDBOX_SIGNING_KEY={SANDBOX_SIGNING}\n")
    (state / "run" / "plan.json").write_text(json.dumps({"services": [
        {"name": "llm-proxy", "url": proxy.url}, {"name": "sandbox", "url": sandbox_url},
        {"name": "redis", "url": "redis://127.0.0.1:1"}]}))
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps(PROBLEMS[0]) + "\n")
    out = tmp_path / "out"
    assert bench("--file", str(data), "--out", str(out), "--state-dir", str(state), "--ablations", "public",
                 "--k", "3") == 0
    assert len(proxy.server.config.app.state.bodies) == 1  # type: ignore[union-attr]
    assert json.loads((out / "results.json").read_text())["ablations"]["public"]["selected@1"] == 1.0


def test_a_platform_that_keeps_failing_ends_the_run_with_a_report(sandbox_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    app = FastAPI()
    calls: list[int] = []

    @app.post("/v1/solve")
    async def solve() -> Any:
        calls.append(1)
        return JSONResponse({"error": {"message": "model unavailable"}}, 503)

    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    monkeypatch.setenv("ATLAS_SANDBOX_SIGNING_KEY", SANDBOX_SIGNING)
    monkeypatch.setattr("atlas_bench.run.GIVE_UP_AFTER", 2)
    with ServerThread(app) as server:
        assert bench("--file", str(data), "--out", str(tmp_path / "out"), "--url", server.url, "--api-key", KEY,
                     "--sandbox-url", sandbox_url) == 1
    assert len(calls) == 2  # the third problem is not tried
    report = (tmp_path / "out" / "report.md").read_text()
    assert "answered 503" in report and "stopped after 2 failures in a row" in report


def test_a_rate_limited_solve_waits_as_told_and_is_asked_again() -> None:
    """The key's limits answer 429 with Retry-After: the bench waits that long and asks again, like a client."""
    import asyncio

    import httpx

    from atlas_bench.problems import BenchProblem, Hidden
    from atlas_bench.run import solve

    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/solve")
    async def limited(request: Request) -> Any:
        app.state.calls += 1
        if app.state.calls == 1:
            return JSONResponse({"error": {"message": "rate limit reached for this key: tokens per minute"}}, 429,
                                headers={"Retry-After": "1"})
        return {"code": GOOD, "candidates": [], "usage": {}}

    async def ask(url: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            problem = BenchProblem(id="add", dataset="custom", prompt="Write add(a, b).", entry_point="add",
                                   hidden=Hidden(mode="assert", tests=[]))
            return await solve(http, url, KEY, problem, {"k": 1}, 0)

    with ServerThread(app) as server:
        assert asyncio.run(ask(server.url))["code"] == GOOD
    assert app.state.calls == 2


def test_the_protocol_doc_names_every_run_option() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [o for a in commands.choices["run"]._actions for o in a.option_strings if o.startswith("--")]
    doc = (REPO / "docs" / "benchmark.md").read_text()
    assert [o for o in options if o != "--help" and f"`{o}" not in doc] == []
