"""``atlas-bench run``: every problem through the platform's ``POST /v1/solve`` with a key, as a user sends it (the
prompt and its public tests only), once per ablation and seed; the one selected answer scored once on the
hidden tests in the sandbox.

Ablations (each a budget of the same request): ``baseline`` (k = 1, no self-tests, no repair: the greedy
candidate), ``public`` (best of k by the public tests), ``self`` (+ the model's own tests), ``repair`` (+ repair
rounds). Per-task results are appended to ``tasks.jsonl`` one complete line at a time (flushed and synced), so
an interrupted run loses at most the task in flight and a re-run continues where it stopped."""

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

from atlas_bench.datasets import Problem
from atlas_bench.metrics import bootstrap
from atlas_bench.score import Scorer

ABLATIONS = ("baseline", "public", "self", "repair")
TASKS_FILE = "tasks.jsonl"


class PlatformError(Exception):
    """The platform refused or failed a solve: the task is not recorded, so a re-run tries it again."""


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    k: int = 5
    ablations: tuple[str, ...] = ABLATIONS
    seeds: tuple[int, ...] = (0,)
    repair_rounds: int = 2
    max_tokens: int = 512
    concurrency: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with the results (hashes, versions, ...)

    def budget(self, ablation: str) -> dict[str, Any]:
        if ablation == "baseline":
            return {"k": 1, "self_tests": False, "repair_rounds": 0, "max_tokens": self.max_tokens}
        return {"k": self.k, "self_tests": ablation in ("self", "repair"),
                "repair_rounds": self.repair_rounds if ablation == "repair" else 0, "max_tokens": self.max_tokens}


def task_key(problem_id: str, seed: int) -> str:
    return f"{problem_id}#{seed}"


def done_tasks(out: Path) -> dict[str, dict[str, Any]]:
    """The finished tasks of an earlier run in ``out`` (a torn last line, from a kill mid-write, is ignored)."""
    path = out / TASKS_FILE
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        found[task_key(record["id"], record["seed"])] = record
    return found


def append(out: Path, record: dict[str, Any]) -> None:
    with (out / TASKS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


async def solve(http: httpx.AsyncClient, url: str, key: str, problem: Problem, budget: dict[str, Any], seed: int
                ) -> dict[str, Any]:
    body: dict[str, Any] = {"problem": problem.prompt, "language": problem.language, "budget": budget, "seed": seed,
                            "tests": problem.public_tests}
    if problem.entry_point:
        body["entry_point"] = problem.entry_point
    try:
        answer = await http.post(f"{url}/v1/solve", json=body, headers={"Authorization": f"Bearer {key}"},
                                 timeout=httpx.Timeout(10.0, read=3600.0))
    except httpx.HTTPError as exc:
        raise PlatformError(f"the proxy at {url} is unreachable ({type(exc).__name__})") from None
    if answer.status_code != 200:
        raise PlatformError(f"the platform answered {answer.status_code}: {answer.text[:300]}")
    result: dict[str, Any] = answer.json()
    return result


async def run_task(http: httpx.AsyncClient, url: str, key: str, scorer: Scorer, config: RunConfig,
                   problem: Problem, seed: int) -> dict[str, Any]:
    record: dict[str, Any] = {"id": problem.id, "seed": seed, "difficulty": problem.difficulty, "ablations": {}}
    for ablation in config.ablations:
        started = time.monotonic()
        result = await solve(http, url, key, problem, config.budget(ablation), seed)
        score = await scorer.score(problem, result.get("code"))
        record["ablations"][ablation] = {
            "passed": score.passed, "verdict": score.verdict, "public_verified": bool(result.get("verified")),
            "tokens": int((result.get("usage") or {}).get("total_tokens", 0)),
            "wall_s": round(time.monotonic() - started, 3), "candidates": len(result.get("candidates") or []),
            "repair_rounds": result.get("repair_rounds", 0), "code": result.get("code"),
        }
    return record


def run(problems: list[Problem], config: RunConfig, out: Path, url: str, key: str, sandbox_url: str,
        signing_key: str, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run what ``out`` does not hold yet; then summarise everything it holds for these problems."""
    out.mkdir(parents=True, exist_ok=True)
    done = done_tasks(out)
    todo = [(p, s) for p in problems for s in config.seeds if task_key(p.id, s) not in done]
    began = time.time()
    failures: list[str] = []
    asyncio.run(_work(todo, config, out, url, key, sandbox_url, signing_key, progress, done, failures))
    records = [done[task_key(p.id, s)] for p in problems for s in config.seeds if task_key(p.id, s) in done]
    summary = summarise(records, config, time.time() - began, len(todo) - len(failures))
    summary["unfinished"] = failures
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(report(summary))
    return summary


async def _work(todo: list[tuple[Problem, int]], config: RunConfig, out: Path, url: str, key: str,
                sandbox_url: str, signing_key: str, progress: Callable[[dict[str, Any]], None] | None,
                done: dict[str, dict[str, Any]], failures: list[str]) -> None:
    async with httpx.AsyncClient() as http:
        scorer = Scorer(http, sandbox_url, signing_key)
        slots = asyncio.Semaphore(config.concurrency)

        async def one(problem: Problem, seed: int) -> None:
            async with slots:
                try:
                    record = await run_task(http, url, key, scorer, config, problem, seed)
                except PlatformError as exc:
                    failures.append(f"{problem.id}: {exc}")
                    return
                append(out, record)
                done[task_key(problem.id, seed)] = record
                if progress:
                    progress(record)

        await asyncio.gather(*(one(p, s) for p, s in todo))


def summarise(records: list[dict[str, Any]], config: RunConfig, wall_s: float, ran: int) -> dict[str, Any]:
    ablations: dict[str, Any] = {}
    for name in config.ablations:
        rows = [r["ablations"][name] for r in records if name in r["ablations"]]
        passed = [1.0 if x["passed"] else 0.0 for x in rows]
        ablations[name] = {
            "tasks": len(rows), "selected@1": round(sum(passed) / len(rows), 4) if rows else None,
            "ci95": bootstrap(passed), "public_verified": sum(1 for x in rows if x["public_verified"]),
            "tokens_per_task": round(sum(x["tokens"] for x in rows) / len(rows), 1) if rows else None,
            "wall_s_per_task": round(sum(x["wall_s"] for x in rows) / len(rows), 2) if rows else None,
        }
    return {"config": asdict(config), "tasks": len(records), "ran_now": ran,
            "wall_s_this_run": round(wall_s, 1),
            "tasks_per_hour_this_run": round(ran * 3600 / wall_s, 1) if ran and wall_s else None,
            "ablations": ablations}


def report(summary: dict[str, Any]) -> str:
    config = summary["config"]
    lines = [f"# atlas-bench: {config['dataset']}", "",
             f"{summary['tasks']} task(s) (problems x seeds {config['seeds']}); k = {config['k']}, repair rounds "
             f"{config['repair_rounds']}, {config['max_tokens']} tokens per candidate. Each answer is scored once "
             "on the hidden tests.", "",
             "| ablation | tasks | selected@1 | 95% CI | public tests passed | tokens / task | wall s / task |",
             "|---|---|---|---|---|---|---|"]
    for name, a in summary["ablations"].items():
        if not a["tasks"]:
            continue
        lines.append(f"| {name} | {a['tasks']} | {a['selected@1']:.1%} | {a['ci95'][0]:.1%} to {a['ci95'][1]:.1%} | "
                     f"{a['public_verified']} | {a['tokens_per_task']} | {a['wall_s_per_task']} |")
    if summary.get("unfinished"):
        lines += ["", f"{len(summary['unfinished'])} task(s) failed on the platform and are not counted; a re-run "
                  "retries them."]
    return "\n".join(lines) + "\n"
