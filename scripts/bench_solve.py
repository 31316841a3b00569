"""make bench-solve: what the verified pipeline adds over the raw model, on HumanEval and MBPP, without hidden tests.

For every problem the engine (atlas-engine, in process) generates ten candidates with its temperature
schedule (candidate 0 greedy, 1-4 at 0.6, 5-9 at 0.8, seeds seed+i), so the first k of them are exactly what a
solve with budget k generates. Then, on the public tests only (HumanEval: the docstring's examples as the engine
parses them; MBPP: the first assert, written into the problem text):
- the engine judges every distinct program,
- the model writes its own tests and the engine clusters programs by their outputs on them (CodeT),
- for k in {1, 5, 10} the engine's selection picks one program (a) on public tests alone, (b) with self-tests,
  (c) with self-tests and up to R repair rounds when nothing in the first k passes.
The selected program, and for coverage every candidate, is then judged once on the hidden tests (HumanEval's
``check``, MBPP's three asserts) in the sandbox. Reported: raw pass@1 (the greedy candidate), pass@k coverage
(unbiased estimator over the ten samples, and the oracle any-of-first-k), selected@1 per k and variant, tokens and
time per task, and the engine's orchestration overhead (wall time with neither an LLM nor a sandbox call in flight).

Real parts only: llama-cpp-python serving the default model, the sandbox service with bubblewrap, a real Redis.
Per-task results go to ``--out``'s directory as JSONL; a re-run continues where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import Service, free_port

from atlas_bench.metrics import bootstrap, pass_at_k
from atlas_core.sandbox_api import JudgeRequest
from atlas_engine import (
    Budget,
    Candidate,
    Engine,
    EngineConfig,
    Generation,
    LLMClient,
    Message,
    SandboxClient,
    Solve,
    SolveRequest,
    Timeline,
    choose,
    sandbox_request,
)
from atlas_engine.select import agree
from atlas_llama.models import default_chat_model

ROOT = Path(__file__).resolve().parent.parent
POOL = 10
KS = (1, 5, 10)
VARIANTS = ("public", "public+self", "public+self+repair")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(dataset: str, data: Path) -> tuple[list[dict[str, Any]], Path]:
    """Problems as (id, problem text, entry point, hidden test program pieces)."""
    if dataset == "humaneval":
        path = data / "humaneval" / "HumanEval.jsonl.gz"
        with gzip.open(path, "rt") as lines:
            rows = [json.loads(line) for line in lines]
        return [{"id": r["task_id"], "problem": r["prompt"], "entry_point": r["entry_point"],
                 "hidden": {"setup": "", "test": r["test"] + f"\ncheck({r['entry_point']})\n"}} for r in rows], path
    path = data / "mbpp" / "mbpp.jsonl"
    rows = [json.loads(line) for line in path.open()]
    problems = []
    for r in rows:
        if not 11 <= r["task_id"] <= 510:
            continue
        text = f"{r['text']}\nYour code should pass this test:\n{r['test_list'][0]}\n"
        problems.append({"id": f"mbpp/{r['task_id']}", "problem": text, "entry_point": None,
                         "hidden": {"setup": r.get("test_setup_code") or "", "test": "\n".join(r["test_list"])}})
    return problems, path


def commit() -> str:
    """The checkout being measured (recorded with every task, so a resumed run shows if the code changed)."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    found = subprocess.run([git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


class ReplayingLLM(LLMClient):
    """Answers a request identical to an earlier one (same messages, temperature and seed) with the earlier
    answer, so the k=1, 5 and 10 selections repairing the same failing program share one real generation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[str, Generation] = {}

    async def chat(self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int,
                   stop: list[str] | None = None, timeline: Timeline | None = None) -> Generation:
        key = json.dumps([messages, temperature, seed, max_tokens, stop])
        if key not in self.seen:
            self.seen[key] = await super().chat(messages, temperature=temperature, seed=seed, max_tokens=max_tokens,
                                                stop=stop, timeline=timeline)
            while len(self.seen) > 200:  # one task's worth is all that can repeat
                self.seen.pop(next(iter(self.seen)))
        return self.seen[key]


class Llama:
    """llama-cpp-python's server with the default model, as `atlas up` starts it (``embedding``: serving the
    model's own embeddings instead, as ATLAS_LENS_MAIN_EMBED_URL's server does)."""

    def __init__(self, workdir: Path, model: Path, threads: int, embedding: bool = False) -> None:
        self.port = free_port()
        self.key = secrets.token_urlsafe(32)
        conf = workdir / ("llama-embed.json" if embedding else "llama.json")
        conf.write_text(json.dumps({"host": "127.0.0.1", "port": self.port, "api_key": self.key,
                                    "interrupt_requests": False,
                                    "models": [{"model": str(model), "model_alias": model.stem, "n_ctx": 4096,
                                                "n_threads": threads, "embedding": embedding, "verbose": False}]}))
        self.proc = subprocess.Popen([sys.executable, "-m", "atlas_llama.server", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("llama-server did not start")
            time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def subset(solve: Solve, k: int, with_self: bool) -> Solve:
    """A solve holding the first k samples, with their verdicts and self-test outputs, re-deduplicated."""
    sub = replace(solve, candidates=[], self_tests=solve.self_tests if with_self else [],
                  prompt_tokens=0, completion_tokens=0, repair_rounds=0)
    by_key = {c.key: c for c in solve.candidates if c.unique}
    for c in solve.candidates:
        if c.index >= k:
            continue
        copy = Candidate(index=c.index, origin=c.origin, temperature=c.temperature, seed=c.seed, code=c.code,
                         tokens=c.tokens)
        sub.add(copy)
        if copy.unique:
            judged = by_key[copy.key]
            copy.verdict, copy.public_passed, copy.public_total = judged.verdict, judged.public_passed, \
                judged.public_total
            copy.failure = judged.failure
            if with_self:
                copy.outputs, copy.self_passed = judged.outputs, judged.self_passed
    if with_self:
        agree(sub.candidates)
    return sub


async def hidden_verdicts(sandbox: SandboxClient, problem: dict[str, Any], codes: list[str]) -> list[bool]:
    """Each program judged once on the hidden tests (HumanEval's check, MBPP's asserts), 6 s per test."""
    if not codes:
        return []
    request = sandbox_request(JudgeRequest, mode="assert", setup=problem["hidden"]["setup"],
                              candidates=[{"code": c} for c in codes], tests=[{"code": problem["hidden"]["test"]}],
                              limits={"timeout_s": 6.0})
    answer = await sandbox.judge(request, "bench-hidden")
    return [r.passed for r in answer.candidates]


async def run_task(engine: Engine, sandbox: SandboxClient, problem: dict[str, Any], args: argparse.Namespace
                   ) -> dict[str, Any]:
    request = SolveRequest(problem=problem["problem"], entry_point=problem["entry_point"], seed=args.seed,
                           budget=Budget(k=POOL, max_tokens=args.max_tokens, repair_rounds=args.repair_rounds))
    solve = engine.start(request)
    solve.deadline = time.monotonic() + 3600
    started = time.monotonic()
    await engine.generator.generate(solve, POOL)
    t_gen = time.monotonic() - started
    await engine.judge.judge(solve)
    t_judge = time.monotonic() - started - t_gen
    before = solve.prompt_tokens, solve.completion_tokens
    if engine.checker.can_check(solve.problem):  # always written here; each k charges them only where a solve would
        await engine.checker.write(solve)
        await engine.checker.run(solve)
    self_tokens = [solve.prompt_tokens - before[0], solve.completion_tokens - before[1]]
    t_self = time.monotonic() - started - t_gen - t_judge
    pool_times = solve.timeline.totals()

    codes = {c.key: c.code for c in solve.candidates if c.unique and c.code}
    hidden = dict(zip(codes, await hidden_verdicts(sandbox, problem, list(codes.values())), strict=True))
    samples = [bool(c.code) and hidden.get(c.key, False) for c in solve.candidates]
    record: dict[str, Any] = {
        "id": problem["id"], "commit": args.commit, "settings": args.task_settings,
        "entry_point": solve.problem.entry_point, "public_tests": len(solve.problem.tests),
        "self_tests": len(solve.self_tests), "samples_pass": samples,
        "sample_tokens": [c.tokens for c in solve.candidates], "sample_prompt_tokens": before[0],
        "sample_seconds_total": round(t_gen, 3), "judge_seconds": round(t_judge, 3),
        "self_test_seconds": round(t_self, 3), "self_test_tokens": self_tokens,
        "pool_timeline": {k: round(v, 4) for k, v in pool_times.items()},
        "selected": {},
    }
    for k in KS:
        for variant in VARIANTS:
            sub = subset(solve, k, with_self=False)
            wrote_self = variant != "public" and engine.checker.wanted(sub)
            if wrote_self:
                sub = subset(solve, k, with_self=True)
            t0 = time.monotonic()
            if variant == "public+self+repair":
                await engine.repairer.rounds(sub, args.repair_rounds)
            winner = choose(sub.candidates)
            passed = False
            if winner is not None and winner.code:
                passed = hidden[winner.key] if winner.key in hidden else \
                    (await hidden_verdicts(sandbox, problem, [winner.code]))[0]
            record["selected"][f"k{k}/{variant}"] = {
                "winner": winner.index if winner else None, "public_ok": bool(winner and winner.public_ok),
                "hidden_pass": passed, "self_tests_used": wrote_self, "repair_rounds": sub.repair_rounds,
                "repair_tokens": [sub.prompt_tokens, sub.completion_tokens],
                "repair_seconds": round(time.monotonic() - t0, 3)}
    record["wall_seconds"] = round(time.monotonic() - started, 3)
    return record


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    if not n:
        return {"tasks": 0}
    out: dict[str, Any] = {"tasks": n}
    raw = [float(r["samples_pass"][0]) for r in records]
    out["raw_pass@1"], out["raw_pass@1 ci95"] = sum(raw) / n, bootstrap(raw)
    for k in KS:
        out[f"pool pass@{k}"] = sum(pass_at_k(POOL, sum(r["samples_pass"]), k) for r in records) / n
        out[f"oracle@{k}"] = sum(any(r["samples_pass"][:k]) for r in records) / n
        for variant in VARIANTS:
            key = f"k{k}/{variant}"
            chosen = [float(r["selected"][key]["hidden_pass"]) for r in records]
            out[f"selected@1 {key}"], out[f"selected@1 {key} ci95"] = sum(chosen) / n, bootstrap(chosen)
            completion = [sum(r["sample_tokens"][:k]) + r["selected"][key]["repair_tokens"][1] +
                          (r["self_test_tokens"][1] if r["selected"][key]["self_tests_used"] else 0)
                          for r in records]
            out[f"completion tokens/task {key}"] = round(sum(completion) / n, 1)
    total = sum(r["pool_timeline"]["total_s"] for r in records)
    out["pool_wall_s/task"] = round(total / n, 3)
    out["pool_llm_share"] = round(sum(r["pool_timeline"]["llm_s"] for r in records) / total, 4)
    out["pool_sandbox_share"] = round(sum(r["pool_timeline"]["sandbox_s"] for r in records) / total, 4)
    out["overhead_share"] = round(sum(r["pool_timeline"]["overhead_s"] for r in records) / total, 6)
    out["wall_s/task (everything, incl. hidden judging and repairs)"] = round(
        sum(r["wall_seconds"] for r in records) / n, 3)
    gen = sum(r["sample_seconds_total"] for r in records)
    out["llm_s per sample"] = round(gen / (n * POOL), 3)
    out["completion tokens per sample"] = round(sum(sum(r["sample_tokens"]) for r in records) / (n * POOL), 1)
    return out


async def run_all(args: argparse.Namespace, problems: list[dict[str, Any]], done: dict[str, Any],
                  tasks_file: Path, model: Path, config: EngineConfig) -> None:
    work = Path(tempfile.mkdtemp(prefix="atlas-bench-solve-"))
    service = Service(work)
    llama = Llama(work, model, args.threads)
    try:
        async with httpx.AsyncClient(timeout=600) as http:
            engine = Engine(ReplayingLLM(http, llama.url, llama.key, timeout_s=600),
                            SandboxClient(http, f"http://127.0.0.1:{service.port}",
                                          service.secret, issuer="bench"), config)
            with tasks_file.open("a") as sink:
                for i, problem in enumerate(problems):
                    if problem["id"] in done:
                        continue
                    record = await run_task(engine, engine.sandbox, problem, args)
                    done[problem["id"]] = record
                    sink.write(json.dumps(record) + "\n")
                    sink.flush()
                    raw = sum(r["samples_pass"][0] for r in done.values())
                    sel = sum(r["selected"]["k5/public+self+repair"]["hidden_pass"] for r in done.values())
                    print(f"[{i + 1}/{len(problems)}] {problem['id']}: raw {raw}/{len(done)}, "
                          f"selected@1 k5 {sel}/{len(done)}, {record['wall_seconds']:.1f}s", flush=True)
    finally:
        llama.close()
        service.close()


async def main_async(args: argparse.Namespace) -> None:
    data = Path(args.data_path or os.environ.get("ATLAS_DATA_DIR") or ROOT.parent / "shared" / "datasets")
    problems, data_file = load(args.dataset, data)
    if args.limit:
        problems = problems[: args.limit]
    model = Path(args.model) if args.model else default_chat_model()
    assert model is not None and model.is_file(), "no model file: run make install"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tasks_file = out.with_suffix(".tasks.jsonl")
    args.task_settings = {"seed": args.seed, "max_tokens": args.max_tokens, "repair_rounds": args.repair_rounds,
                          "model": model.name, "model_bytes": model.stat().st_size}
    done = {}
    if tasks_file.exists():
        for line in tasks_file.read_text().splitlines():
            record = json.loads(line)
            if record.get("settings") != args.task_settings:
                raise SystemExit(f"{tasks_file} holds tasks run with other settings ({record.get('settings')}); "
                                 "use another --out or delete it")
            done[record["id"]] = record
    config = EngineConfig(k=POOL, max_tokens=args.max_tokens, repair_rounds=args.repair_rounds,
                          deadline_s=3600, self_tests=True)
    started = time.time()
    args.commit = commit()
    if not args.summarise_only:
        await run_all(args, problems, done, tasks_file, model, config)
    records = [done[p["id"]] for p in problems if p["id"] in done]
    report = {
        "dataset": args.dataset, "data_file": str(data_file), "data_sha256": sha256(data_file),
        "model_file": model.name, "model_sha256": sha256(model),
        "settings": {"pool": POOL, "ks": KS, "max_tokens": args.max_tokens, "repair_rounds": args.repair_rounds,
                     "repair_width": config.repair_width, "self_test_count": config.self_test_count,
                     "seed": args.seed, "temperatures": "candidate 0: 0.0; 1-4: 0.6; 5-9: 0.8",
                     "llama_threads": args.threads, "prompt_style": config.prompt_style},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "versions": {name: version(name) for name in ("llama_cpp_python", "atlas-engine", "atlas-sandbox")},
        "this_run_wall_s": round(time.time() - started, 1),
        "engine_commits": sorted({r.get("commit", "unrecorded") for r in records}),
        "summary": summarise(records),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")  # noqa: ASYNC240 (the run is over)
    print(json.dumps(report["summary"], indent=2))
    print(table(report["summary"]))


def table(summary: dict[str, Any]) -> str:
    """The markdown table docs/benchmarks.md quotes."""
    if not summary.get("tasks"):
        return "no tasks"
    rows = ["| k | pool pass@k (unbiased) | oracle@k (any of the first k) | selected@1, public tests | + self-tests "
            "| + self-tests + repair |", "|---|---|---|---|---|---|"]
    for k in KS:
        cells = [f"{summary[f'pool pass@{k}']:.1%}", f"{summary[f'oracle@{k}']:.1%}"]
        cells += [f"{summary[f'selected@1 k{k}/{v}']:.1%}" for v in VARIANTS]
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("humaneval", "mbpp"), default="humaneval")
    parser.add_argument("--data-path", help="the datasets folder (default $ATLAS_DATA_DIR or ../shared/datasets)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N problems")
    parser.add_argument("--model", help="GGUF file (default: the default model, SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--repair-rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="bench-results/solve-humaneval.json")
    parser.add_argument("--summarise-only", action="store_true", help="report on the tasks already run, run none")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
