"""make bench-router: what the confidence router and the pattern cache buy, on problems disjoint from the ones
they learned from.

    bench_router.py warm --limit N --out DIR
        the decontamination check (MBPP train against HumanEval and MBPP test, by hash and by near-duplicate
        embedding; printed, written to DIR/router-check.json, matches left out), then the warm-up: the kept
        training problems through the running platform with the ``learn`` ablation (routed, learning on: every
        verified outcome updates the posteriors and writes the bench user's patterns)
    bench_router.py analyse --eval-runs A,B --warm DIR/router-warm --posteriors FILE --out FILE [--plot SVG]
        from atlas-bench runs with the baseline (k = 1), repair (fixed k = 5: the standard route's budget),
        router and cache ablations: selected@1 (with the runs' own CIs), tokens and wall seconds per solved
        problem with bootstrap CIs, the token saving against fixed k = 5, selected@1 at equal compute, the route
        mix, what the cache retrieved and how similar, the calibration of the difficulty signals (the failure
        rate per bin and each signal's AUC), and the posteriors after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from atlas_bench.access import local_urls, model_key, platform_keys
from atlas_bench.datasets import load
from atlas_bench.lens import check
from atlas_bench.report import read_tasks
from atlas_bench.router_eval import (
    calibration,
    calibration_rows,
    equal_compute,
    per_solved,
    retrievals,
    route_mix,
    saving,
)
from atlas_bench.run import BenchConfig, run
from atlas_router import RouterSettings

ABLATIONS = ("baseline", "repair", "router", "cache")


def warm(args: argparse.Namespace) -> int:
    data, state = Path(os.environ.get("ATLAS_DATA_DIR") or "datasets"), Path(args.state_dir)
    training = load("mbpp", data, split="train").problems[: args.limit]
    evaluation = {p.id: p.prompt for name, split in (("humaneval", "test"), ("mbpp", "test"))
                  for p in load(name, data, split=split).problems}
    urls = local_urls(state)
    report = asyncio.run(check({p.id: p.prompt for p in training}, evaluation, urls["embedding-server"],
                               model_key(state)))
    print("\n".join(report.lines()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    excluded = {t for _, t in report.exact} | {t for _, t, _ in report.near}
    kept = [p for p in training if p.id not in excluded]
    (out / "router-check.json").write_text(json.dumps({
        "training": report.training, "evaluation": report.evaluation, "exact": report.exact,
        "near": report.near, "left_out": sorted(excluded), "kept": [p.id for p in kept]}, indent=1))
    key, signing = platform_keys(state)
    if not key or not signing:
        print("bench-router: no API key or sandbox signing key beside `atlas up` (--state-dir)", file=sys.stderr)
        return 2
    config = BenchConfig(dataset="mbpp", k=5, ablations=("learn",), seeds=(0,), repair_rounds=2,
                         max_tokens=args.max_tokens, extra={"split": "train", "problems": [p.id for p in kept]})
    print(f"warm-up: {len(kept)} MBPP train problem(s) through the platform ({len(training) - len(kept)} left out)")
    summary = run(kept, config, out / "router-warm", urls["llm-proxy"], key, urls["sandbox"], signing)
    print(f"warm-up: selected@1 {summary['ablations']['learn']['selected@1']}")
    return 0


def analyse(args: argparse.Namespace) -> int:
    bounds = RouterSettings().bins()
    out: dict[str, Any] = {"datasets": {}}
    pooled: list[dict[str, Any]] = []
    for run_dir in (Path(p) for p in args.eval_runs.split(",")):
        records = list(read_tasks(run_dir).values())
        pooled += records
        official = json.loads((run_dir / "results.json").read_text()).get("ablations") or {}
        out["datasets"][run_dir.name] = {
            name: {**per_solved(records, name), "selected@1_ci95": (official.get(name) or {}).get("ci95")}
            for name in ABLATIONS}
    table = {name: per_solved(pooled, name) for name in ABLATIONS}
    out["pooled"] = table
    out["saving"] = [saving(pooled, "repair", "router"), saving(pooled, "repair", "cache"),
                     saving(pooled, "router", "cache")]
    out["equal_compute"] = {r: equal_compute(table, "baseline", "repair", r) for r in ("router", "cache")}
    out["route_mix"] = {name: route_mix(pooled, name) for name in ("router", "cache")}
    out["retrievals"] = retrievals(pooled, "cache")
    warm_records = list(read_tasks(Path(args.warm)).values()) if args.warm else []
    out["warm"] = {"problems": len(warm_records), **route_mix(warm_records, "learn"),
                   **{k: v for k, v in per_solved(warm_records, "learn").items() if k == "selected@1"}}
    eval_rows = calibration_rows(pooled, "cache", "repair")
    warm_rows = calibration_rows(warm_records, "learn", "learn")
    out["calibration"] = {"bins": bounds, "evaluation (signals of cache, outcome of fixed k=5)":
                          calibration(eval_rows, bounds),
                          "warm-up (signals and outcome of the routed solve)": calibration(warm_rows, bounds)}
    if args.posteriors:
        out["posteriors"] = json.loads(Path(args.posteriors).read_text())
    Path(args.out).write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(out["calibration"], Path(args.plot))
    print(json.dumps({k: out[k] for k in ("pooled", "saving", "equal_compute", "route_mix", "retrievals")},
                     indent=1))
    return 0


def plot(cal: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in cal.items():
        if name == "bins":
            continue
        points = [(b["from"], b["to"], b["failure_rate"], b["n"]) for b in c["bins"] if b["n"]]
        xs = [(lo + hi) / 2 for lo, hi, _, _ in points]
        ax.plot(xs, [r for _, _, r, _ in points], marker="o", label=f"{name.split(' (')[0]} (AUC of D "
                f"{c['auc_D']})")
        for x, (_, _, r, n) in zip(xs, points, strict=True):
            ax.annotate(f"n={n}", (x, r), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("router difficulty D (bin centre)")
    ax.set_ylabel("failure rate on the hidden tests")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(0, 1)
    ax.set_title("Do the difficulty signals predict failure?")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("warm")
    w.add_argument("--limit", type=int, default=40)
    w.add_argument("--max-tokens", type=int, default=256)
    w.add_argument("--out", default="bench-results")
    w.add_argument("--state-dir", default=os.environ.get("ATLAS_STATE_DIR") or ".atlas")
    a = sub.add_parser("analyse")
    a.add_argument("--eval-runs", required=True)
    a.add_argument("--warm")
    a.add_argument("--posteriors")
    a.add_argument("--out", required=True)
    a.add_argument("--plot")
    args = parser.parse_args()
    return warm(args) if args.command == "warm" else analyse(args)


if __name__ == "__main__":
    sys.exit(main())
