"""``atlas lens bootstrap``: the Lens's first labelled data, made by the platform itself.

For each training source (MBPP's train, validation and prompt splits; LiveCodeBench release_v1 problems up to a
cut-off date) the problems go through the running platform exactly as ``atlas-bench run`` sends them (the
``public`` ablation: k candidates, the public tests, no Lens), and every sampled candidate is labelled by the
problem's hidden tests. Before anything is written, the training problems are checked against the evaluation
problems (HumanEval, MBPP's test split, LiveCodeBench after the cut-off) by the hash of their normalised text
and by near-duplicate embeddings; the check is printed, and any training problem it matches is left out.

Files: ``<state>/lens/bootstrap/<source>/`` holds the atlas-bench run (a re-run continues it);
``<state>/lens/data/bootstrap-<source>.jsonl`` the labelled rows the trainer reads."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from atlas_bench.access import local_urls, model_key, platform_keys
from atlas_bench.datasets import load
from atlas_bench.problems import BenchProblem, DatasetError
from atlas_bench.report import read_tasks
from atlas_bench.run import BenchConfig, run
from atlas_lens import Contamination, EmbeddingClient, contamination, data_dir, lens_dir


@dataclass(frozen=True)
class Source:
    name: str
    dataset: str
    split: str = "test"
    until: str | None = None  # LiveCodeBench: contests up to this date
    since: str | None = None


def parse_sources(text: str) -> list[Source]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        dataset, _, arg = part.partition(":")
        if dataset == "mbpp":
            if arg in ("", "test"):
                raise DatasetError("MBPP's test split is evaluation data: train on train, validation or prompt")
            out.append(Source(f"mbpp-{arg}", "mbpp", split=arg))
        elif dataset == "livecodebench":
            if not arg:
                raise DatasetError("livecodebench needs a cut-off date: livecodebench:YYYY-MM-DD")
            out.append(Source(f"livecodebench-to-{arg}", "livecodebench", until=arg))
        else:
            raise DatasetError(f"{dataset!r} cannot be training data here: mbpp:SPLIT or livecodebench:DATE")
    return out


def evaluation_sources(sources: list[Source]) -> list[Source]:
    """What must never be trained on: HumanEval, MBPP's test split, and LiveCodeBench after the latest cut-off."""
    cutoffs = [s.until for s in sources if s.until]
    out = [Source("humaneval", "humaneval"), Source("mbpp-test", "mbpp", split="test")]
    if cutoffs:
        out.append(Source("livecodebench-after", "livecodebench", since=_next_day(max(cutoffs))))
    return out


def _next_day(date: str) -> str:
    return (datetime.date.fromisoformat(date) + datetime.timedelta(days=1)).isoformat()


def load_source(source: Source, data: Path) -> list[BenchProblem]:
    return load(source.dataset, data, split=source.split, until=source.until, since=source.since).problems


def labelled_rows(out: Path, problems: list[BenchProblem], ablation: str = "public") -> list[dict[str, Any]]:
    """One row per (problem, seed) an atlas-bench run holds: the problem's text and each sampled candidate's code
    with its hidden-test label."""
    by_id = {p.id: p for p in problems}
    rows = []
    for record in read_tasks(out).values():
        problem = by_id.get(record["id"])
        result = (record.get("ablations") or {}).get(ablation) or {}
        samples = [s for s in result.get("samples") or [] if s.get("code")]
        if problem is None or not samples:
            continue
        rows.append({"task": problem.id, "dataset": problem.dataset, "seed": record["seed"],
                     "problem": problem.prompt,
                     "candidates": [{"code": s["code"], "passed": bool(s["passed"]), "verdict": s.get("verdict"),
                                     "score": s.get("score")} for s in samples]})
    return rows


async def check(training: dict[str, str], evaluation: dict[str, str], url: str, key: str | None) -> Contamination:
    async with httpx.AsyncClient() as http:
        embedder = EmbeddingClient(http, url, key or "", timeout_s=120.0) if key else None
        return await contamination(training, evaluation, embedder)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def bootstrap_main(args: argparse.Namespace, state_dir: Path) -> int:
    data = Path(args.data_path or os.environ.get("ATLAS_DATA_DIR") or "datasets")
    try:
        sources = parse_sources(args.sources)
        training = {s: load_source(s, data)[: args.limit] if args.limit else load_source(s, data) for s in sources}
        evaluation = {p.id: p.prompt for s in evaluation_sources(sources) for p in load_source(s, data)}
    except DatasetError as exc:
        print(f"atlas lens bootstrap: error: {exc}")
        return 2
    urls = local_urls(state_dir)
    texts = {p.id: p.prompt for problems in training.values() for p in problems}
    report = asyncio.run(check(texts, evaluation, urls["embedding-server"], model_key(state_dir)))
    print("\n".join(report.lines()))
    if not model_key(state_dir):
        print("  (no model key: the near-duplicate check could not run; the hash check did)")
    excluded = {t for _, t in report.exact} | {t for _, t, _ in report.near}
    key, signing = platform_keys(state_dir)
    if not key or not signing:
        print("atlas lens bootstrap: error: no API key or sandbox signing key beside `atlas up` (--state-dir)")
        return 2
    for source, problems in training.items():
        kept = [p for p in problems if p.id not in excluded]
        config = BenchConfig(dataset=source.dataset, k=args.k, ablations=("public",),
                             seeds=tuple(int(s) for s in args.seeds.split(",")), repair_rounds=0,
                             max_tokens=args.max_tokens, extra={"split": source.split, "until": source.until,
                                                                "problems": [p.id for p in kept]})
        out = lens_dir(state_dir) / "bootstrap" / source.name
        print(f"{source.name}: {len(kept)} problem(s) through the platform ({len(problems) - len(kept)} left out)")
        summary = run(kept, config, out, urls["llm-proxy"], key, urls["sandbox"], signing)
        rows = labelled_rows(out, kept)
        write_rows(data_dir(state_dir) / f"bootstrap-{source.name}.jsonl", rows)
        passed = sum(c["passed"] for r in rows for c in r["candidates"])
        total = sum(len(r["candidates"]) for r in rows)
        print(f"{source.name}: {len(rows)} labelled row(s), {passed} of {total} candidates pass the hidden tests"
              + (f"; unfinished: {summary['unfinished']}" if summary.get("unfinished") else ""))
    return 0
