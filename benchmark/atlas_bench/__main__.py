"""``atlas-bench``: benchmark datasets through the running platform.

    atlas-bench datasets [--data-path DIR] [--download]   every dataset: problems, file, SHA-256, pinned or not
    atlas-bench run --dataset humaneval --limit 20 --out DIR   problems through the proxy, scored on hidden tests

Plots, pass@k coverage, the random-pick ablation and ``compare`` come next (issue 7).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from atlas_bench import __version__
from atlas_bench.datasets import DATASETS, SOURCES, DatasetError, load
from atlas_bench.run import ABLATIONS, RunConfig, done_tasks, report, run, summarise
from atlas_core.settings import default_state_dir


def data_dir(args: argparse.Namespace) -> Path:
    """``--data-path``, else ``ATLAS_DATA_DIR``, else ``./datasets``."""
    return Path(args.data_path or os.environ.get("ATLAS_DATA_DIR") or "datasets").expanduser()


def cmd_datasets(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    failed = 0
    for name in DATASETS:
        try:
            loaded = load(name, data_dir(args), download=args.download, allow_unpinned=True)
        except DatasetError as exc:
            rows.append({"dataset": name, "error": str(exc)})
            failed += 1
            continue
        for path, digest in loaded.files.items():
            rows.append({"dataset": name, "problems": len(loaded.problems), "file": path, "sha256": digest,
                         "pinned": SOURCES[name].sha256 is not None and path not in loaded.unpinned})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['dataset']:<15} unavailable: {r['error']}")
            else:
                state = "pinned release" if r["pinned"] else ("NOT the pinned release" if SOURCES[r["dataset"]].sha256
                                                              else "not pinned (changes per release)")
                print(f"{r['dataset']:<15} {r['problems']:>4} problems  {r['file']}  sha256 {r['sha256'][:16]}…  "
                      f"{state}")
    return 1 if failed else 0


def _secrets(state_dir: Path) -> dict[str, str]:
    path = state_dir / "secrets.env"
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def cmd_run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir or os.environ.get("ATLAS_STATE_DIR") or default_state_dir()).expanduser()
    key = args.api_key or os.environ.get("ATLAS_API_KEY")
    if not key and (state_dir / "admin.json").is_file():
        key = json.loads((state_dir / "admin.json").read_text()).get("key")
    signing = os.environ.get("ATLAS_SANDBOX_SIGNING_KEY") or _secrets(state_dir).get("ATLAS_SANDBOX_SIGNING_KEY")
    if not key or not signing:
        print("atlas-bench: error: no API key or sandbox signing key: pass --api-key (or ATLAS_API_KEY) and set "
              "ATLAS_SANDBOX_SIGNING_KEY, or run beside `atlas up` (--state-dir)", file=sys.stderr)
        return 2
    try:
        loaded = load(args.dataset, data_dir(args), split=args.split, download=args.download,
                      allow_unpinned=args.allow_unpinned, since=args.since, until=args.until,
                      file=Path(args.file) if args.file else None)
    except DatasetError as exc:
        print(f"atlas-bench: error: {exc}", file=sys.stderr)
        return 2
    problems = loaded.problems[: args.limit] if args.limit else loaded.problems
    config = RunConfig(dataset=args.file or args.dataset, k=args.k, ablations=tuple(args.ablations.split(",")),
                       seeds=tuple(int(s) for s in args.seeds.split(",")), repair_rounds=args.repair_rounds,
                       max_tokens=args.max_tokens, concurrency=args.concurrency,
                       extra={"files": loaded.files, "unpinned": loaded.unpinned, "split": args.split,
                              "limit": args.limit, "version": __version__})
    out = Path(args.out)
    total = len(problems) * len(config.seeds)
    seen = {"n": len(done_tasks(out)), "passed": 0}

    def progress(record: dict[str, Any]) -> None:
        seen["n"] += 1
        last = record["ablations"][config.ablations[-1]]
        seen["passed"] += last["passed"]
        print(f"[{seen['n']}/{total}] {record['id']} seed {record['seed']}: "
              + ", ".join(f"{a} {'pass' if r['passed'] else r['verdict']}" for a, r in record["ablations"].items()),
              file=sys.stderr, flush=True)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a timeout, a stopped job) ends the run like Ctrl-C: with a report

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        summary = run(problems, config, out, args.url.rstrip("/").removesuffix("/v1"), key, args.sandbox_url,
                      signing, progress)
    except KeyboardInterrupt:  # what finished is on disk: report it
        keys = {f"{p.id}#{s}" for p in problems for s in config.seeds}
        records = [r for k, r in done_tasks(out).items() if k in keys]
        summary = summarise(records, config, 0.0, 0)
        (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "report.md").write_text(report(summary))
        print(f"interrupted: {len(records)} of {total} task(s) in {out}; run again to continue", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(report(summary))
    return 1 if summary["unfinished"] else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atlas-bench", description="Run benchmark datasets through ATLAS.")
    parser.add_argument("--version", action="version", version=f"atlas-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    datasets = sub.add_parser("datasets", help="list every dataset with its problems and file hash")
    datasets.add_argument("--data-path", help="directory of the dataset files (default: ATLAS_DATA_DIR, else "
                          "./datasets)")
    datasets.add_argument("--download", action="store_true", help="fetch missing files from their original source")
    datasets.add_argument("--json", action="store_true", help="machine-readable output")
    bench = sub.add_parser("run", help="run a dataset through the platform and score it on hidden tests")
    bench.add_argument("--dataset", choices=DATASETS, default="humaneval")
    bench.add_argument("--file", help="a custom JSONL dataset instead (docs/benchmark.md)")
    bench.add_argument("--split", default="test", help="MBPP split: test, validation, train or prompt")
    bench.add_argument("--since", help="LiveCodeBench: contests from this date (YYYY-MM-DD)")
    bench.add_argument("--until", help="LiveCodeBench: contests up to this date (YYYY-MM-DD)")
    bench.add_argument("--data-path", help="directory of the dataset files (default: ATLAS_DATA_DIR, else ./datasets)")
    bench.add_argument("--download", action="store_true", help="fetch missing files from their original source")
    bench.add_argument("--allow-unpinned", action="store_true", help="accept files that differ from the pinned "
                       "releases (recorded)")
    bench.add_argument("--limit", type=int, help="only the first N problems")
    bench.add_argument("--k", type=int, default=5, help="candidates of the best-of-k ablations (default 5)")
    bench.add_argument("--ablations", default=",".join(ABLATIONS), help=f"comma-separated, of {', '.join(ABLATIONS)}")
    bench.add_argument("--seeds", default="0", help="comma-separated base seeds (default 0)")
    bench.add_argument("--repair-rounds", type=int, default=2)
    bench.add_argument("--max-tokens", type=int, default=512)
    bench.add_argument("--concurrency", type=int, default=1, help="tasks in flight at once")
    bench.add_argument("--out", required=True, help="output directory (a re-run continues there)")
    bench.add_argument("--url", default="http://127.0.0.1:8000", help="the proxy (default: local atlas up)")
    bench.add_argument("--api-key", help="sk-llm- key (default: ATLAS_API_KEY, else the one atlas up kept)")
    bench.add_argument("--state-dir", help="atlas up's state directory (for the key and the sandbox signing key)")
    bench.add_argument("--sandbox-url", default="http://127.0.0.1:8020", help="the sandbox that scores answers")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return
    if args.command == "run":
        unknown = set(args.ablations.split(",")) - set(ABLATIONS)
        if unknown:
            parser.error(f"unknown ablation(s) {', '.join(sorted(unknown))}: use {', '.join(ABLATIONS)}")
        sys.exit(cmd_run(args))
    sys.exit(cmd_datasets(args))


if __name__ == "__main__":
    main()
