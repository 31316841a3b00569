"""``atlas-bench run``: every problem through the platform's ``POST /v1/solve`` with a key, as a user sends it (the
prompt and its public tests only), once per ablation and seed; then the selected answer and every sampled
candidate scored once on the hidden tests in the sandbox (the platform has answered by then and never sees
them). The summary and reports are report.py's.

Ablations (each a budget of the same request): ``baseline`` (k = 1, no self-tests, no repair: the greedy
candidate), ``public`` (best of k by the public tests), ``self`` (+ the model's own tests), ``repair`` (+ repair
rounds), ``plans`` (``self`` with ``plans`` of the k candidates written from distinct natural-language plans,
PlanSearch), ``lens`` (``public`` with the Geometric Lens ordering the ties) and ``lens-stop`` (``lens``, the
candidates judged one at a time in energy order, stopping at the first that passes the public tests). Every
ablation but the two Lens ones turns the Lens off, so they measure the pipeline without it. The routed ones name no
k, so the platform's confidence router chooses each solve's route: ``router`` (the posteriors as they are, the
user's patterns unused), ``cache`` (the same with the user's verified patterns as context and cached answers)
and ``learn`` (``cache`` with learning on: each verified outcome updates the posteriors and writes a pattern; the
warm-up on training problems, never an evaluation). Every other ablation sends ``learn: false`` and ``patterns:
false``, so a benchmark neither teaches the router nor leaks one run's answers into the next. ``send_tests`` says
whether the public tests go with the request (``public``) or not (``none``: the platform gets the prompt alone).
Per-task results are appended to ``tasks.jsonl`` one complete line at a time (flushed and synced), so an
interrupted run loses at most the task in flight and a re-run continues where it stopped."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from atlas_bench.problems import BenchProblem, stripped_prompt
from atlas_bench.report import SEGMENTS_FILE, TASKS_FILE, read_segments, read_tasks, summarise, task_key, write
from atlas_bench.score import HiddenTestScorer, ScorerUnavailable

ABLATIONS = ("baseline", "public", "self", "repair", "plans", "lens", "lens-stop", "router", "cache", "learn")
ROUTED = ("router", "cache", "learn")  # no k: the platform's router chooses the route
DEFAULT_ABLATIONS = ("baseline", "public", "self", "repair")
SEND_TESTS = ("public", "none", "stripped")
GIVE_UP_AFTER = 5


class SolveFailed(Exception):
    """The platform refused or failed a solve: the task is not recorded, so a re-run tries it again."""


@dataclass(frozen=True)
class BenchConfig:
    dataset: str
    k: int = 5
    ablations: tuple[str, ...] = DEFAULT_ABLATIONS
    seeds: tuple[int, ...] = (0,)
    repair_rounds: int = 2
    max_tokens: int = 512
    concurrency: int = 1
    send_tests: str = "public"  # "none": no tests, only the prompt; "stripped": nor the statement's samples
    plans: int = 2  # the plans ablation: of the k candidates, how many are written from distinct plans
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with the results (hashes, versions, ...)

    @classmethod
    def from_dict(cls, c: dict[str, Any]) -> BenchConfig:
        """The config a results.json recorded; a run from before an option existed had its default."""
        return cls(dataset=c["dataset"], k=c["k"], ablations=tuple(c["ablations"]), seeds=tuple(c["seeds"]),
                   repair_rounds=c["repair_rounds"], max_tokens=c["max_tokens"], concurrency=c["concurrency"],
                   send_tests=c.get("send_tests", "public"), plans=c.get("plans", 2), extra=c.get("extra") or {})

    def budget(self, ablation: str) -> dict[str, Any]:
        quiet = {"learn": ablation == "learn", "patterns": ablation in ("cache", "learn")}
        if ablation in ROUTED:
            return {"max_tokens": self.max_tokens, "lens": False, **quiet}
        if ablation == "baseline":
            return {"k": 1, "self_tests": False, "repair_rounds": 0, "max_tokens": self.max_tokens, "lens": False,
                    **quiet}
        budget: dict[str, Any] = {"k": self.k, "self_tests": ablation in ("self", "repair", "plans"),
                                  "repair_rounds": self.repair_rounds if ablation == "repair" else 0,
                                  "max_tokens": self.max_tokens, "lens": ablation.startswith("lens"), **quiet}
        if ablation == "plans":
            budget["plans"] = self.plans
        if ablation == "lens-stop":
            budget["stop_on_first_pass"] = True
        return budget


def append(out: Path, record: dict[str, Any]) -> None:
    with (out / TASKS_FILE).open("a+b") as handle:
        # a line torn by a kill mid-write is ended first, so it stays one unreadable line and this one is whole
        torn = handle.tell() > 0 and handle.seek(-1, os.SEEK_END) >= 0 and handle.read(1) != b"\n"
        handle.write((("\n" if torn else "") + json.dumps(record) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())


LIMITED_RETRIES = 5


def _retry_after(answer: httpx.Response) -> float:
    try:
        return min(60.0, max(1.0, float(answer.headers.get("retry-after", "5"))))
    except ValueError:
        return 5.0


async def solve(http: httpx.AsyncClient, url: str, key: str, problem: BenchProblem, budget: dict[str, Any],
                seed: int, send_tests: str = "public") -> dict[str, Any]:
    prompt = stripped_prompt(problem) if send_tests == "stripped" else problem.prompt
    body: dict[str, Any] = {"problem": prompt, "language": problem.language, "budget": budget, "seed": seed,
                            "tests": problem.public_tests if send_tests == "public" else []}
    if problem.entry_point:
        body["entry_point"] = problem.entry_point
    for attempt in range(LIMITED_RETRIES + 1):
        try:
            answer = await http.post(f"{url}/v1/solve", json=body, headers={"Authorization": f"Bearer {key}"},
                                     timeout=httpx.Timeout(10.0, read=3600.0))
        except httpx.HTTPError as exc:
            raise SolveFailed(f"the proxy at {url} is unreachable ({type(exc).__name__})") from None
        # the key's rate limits: wait as told, as a user's client would (a platform that is down, 503, counts
        # toward the run's failures instead)
        if answer.status_code != 429 or attempt == LIMITED_RETRIES:
            break
        await asyncio.sleep(_retry_after(answer))
    if answer.status_code != 200:
        raise SolveFailed(f"the platform answered {answer.status_code}: {answer.text[:300]}")
    result: dict[str, Any] = answer.json()
    return result


async def run_task(http: httpx.AsyncClient, url: str, key: str, scorer: HiddenTestScorer, config: BenchConfig,
                   problem: BenchProblem, seed: int) -> dict[str, Any]:
    record: dict[str, Any] = {"id": problem.id, "seed": seed, "difficulty": problem.difficulty, "ablations": {}}
    for ablation in config.ablations:
        started = time.monotonic()
        result = await solve(http, url, key, problem, config.budget(ablation), seed, config.send_tests)
        wall_s = time.monotonic() - started
        # The k sampled candidates (not repairs: they are not independent draws) are scored on the hidden
        # tests too, after selection: pass@k coverage and the random-pick ablation come from them, and nothing
        # of the hidden tests goes back to the platform.
        samples = [c for c in result.get("candidates") or [] if c.get("origin") == "sample"]
        scores = await scorer.score_many(problem, [result.get("code")] + [c.get("code") for c in samples])
        score = scores[0]
        timings = result.get("timings") or {}
        record["ablations"][ablation] = {
            "passed": score.passed, "verdict": score.verdict, "public_verified": bool(result.get("verified")),
            "tokens": int((result.get("usage") or {}).get("total_tokens", 0)),
            "wall_s": round(wall_s, 3), "candidates": len(result.get("candidates") or []),
            "samples_passed": [s.passed for s in scores[1:]],
            "llm_calls": timings.get("llm_calls"), "sandbox_calls": timings.get("sandbox_calls"),
            # programs x tests the sandbox ran, where the platform reports it (a call judges many)
            "sandbox_runs": timings.get("sandbox_runs"),
            "repair_rounds": result.get("repair_rounds", 0), "code": result.get("code"),
            "winner": result.get("winner"),
            "route": result.get("route"),  # the router's decision, its signals and each step's spending
            # every sample as the platform judged it, with its hidden-test label: the Lens's training and
            # evaluation data (atlas_bench.lens) and the first-pick measures come from these
            "samples": [{"index": c.get("index"), "code": c.get("code"), "verdict": c.get("verdict"),
                         "public_passed": c.get("public_passed"), "public_total": c.get("public_total"),
                         "agreement": c.get("self_agreement"), "faults": c.get("faults"),
                         "score": c.get("score"), "passed": s.passed}
                        for c, s in zip(samples, scores[1:], strict=True)],
        }
    return record


def run(problems: list[BenchProblem], config: BenchConfig, out: Path, url: str, key: str, sandbox_url: str,
        signing_key: str, progress: Callable[[dict[str, Any]], None] | None = None,
        environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run what ``out`` does not hold yet, then report everything it holds for these problems. Interrupted
    (Ctrl-C, SIGTERM), it still records the segment and writes the report before re-raising."""
    out.mkdir(parents=True, exist_ok=True)
    done = read_tasks(out)
    todo = [(p, s) for p in problems for s in config.seeds if task_key(p.id, s) not in done]
    ids = [p.id for p in problems]
    write(out, report_on(ids, config, out, environment))  # `atlas-bench report` works even after a kill -9
    segment = {"started": time.time(), "tasks": 0}
    failures: list[str] = []

    def finished(record: dict[str, Any]) -> None:
        segment["tasks"] += 1
        if progress:
            progress(record)

    try:
        asyncio.run(_work(todo, config, out, url, key, sandbox_url, signing_key, finished, failures))
    finally:
        segment["ended"] = time.time()
        if segment["tasks"]:
            with (out / SEGMENTS_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(segment) + "\n")
        summary = report_on(ids, config, out, environment)
        summary["unfinished"] = failures
        write(out, summary)
    return summary


def report_on(problem_ids: list[str] | None, config: BenchConfig, out: Path,
              environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of what ``out`` holds for these problems and the config's seeds (every record when the ids
    are unknown: a run from before they were recorded)."""
    done = read_tasks(out)
    if problem_ids is None:
        records = list(done.values())
    else:
        records = [done[task_key(p, s)] for p in problem_ids for s in config.seeds if task_key(p, s) in done]
    return summarise(records, asdict(config), read_segments(out), environment)


async def _work(todo: list[tuple[BenchProblem, int]], config: BenchConfig, out: Path, url: str, key: str,
                sandbox_url: str, signing_key: str, progress: Callable[[dict[str, Any]], None] | None,
                failures: list[str]) -> None:
    # idle connections are dropped before uvicorn's 5 s keep-alive closes them on its side: a request sent on a
    # connection the server is closing fails with ReadError although both ends are healthy
    async with httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=2.0)) as http:
        # each task in flight scores up to k + 1 programs at once, as many as the sandbox's default queue takes
        scorer = HiddenTestScorer(http, sandbox_url, signing_key,
                                  parallel=min(32, max(4, (config.k + 1) * config.concurrency)))
        slots = asyncio.Semaphore(config.concurrency)
        streak = [0]  # failures in a row: a platform or sandbox that is down ends the run instead of every task

        async def one(problem: BenchProblem, seed: int) -> None:
            async with slots:
                if streak[0] >= GIVE_UP_AFTER:
                    return
                try:
                    record = await run_task(http, url, key, scorer, config, problem, seed)
                except (SolveFailed, ScorerUnavailable) as exc:
                    failures.append(f"{problem.id}: {exc}")
                    streak[0] += 1
                    if streak[0] == GIVE_UP_AFTER:
                        failures.append(f"stopped after {GIVE_UP_AFTER} failures in a row; the rest was not tried")
                    return
                streak[0] = 0
                append(out, record)
                if progress:
                    progress(record)

        await asyncio.gather(*(one(p, s) for p, s in todo))
