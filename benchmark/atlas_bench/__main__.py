"""``atlas-bench``: benchmark datasets through the running platform.

    atlas-bench datasets [--data-path DIR] [--download]   every dataset: problems, file, SHA-256, pinned or not
    atlas-bench run --dataset humaneval --limit 20 --out DIR   problems through the proxy, scored on hidden tests
    atlas-bench report DIR                                     rebuild DIR's results.json, report.md and plots
    atlas-bench compare RUN_A RUN_B                            the differences, with per-task flips
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from atlas_bench import __version__
from atlas_bench.access import is_local, local_urls, own_sandbox, platform_keys, shares_host
from atlas_bench.compare import compare
from atlas_bench.datasets import DATASETS, load
from atlas_bench.livecodebench import TESTTYPES
from atlas_bench.local_sandbox import LocalSandboxError, local_sandbox
from atlas_bench.problems import DatasetError
from atlas_bench.report import read_tasks, report, task_key, write
from atlas_bench.run import ABLATIONS, DEFAULT_ABLATIONS, SEND_TESTS, BenchConfig, report_on, run
from atlas_bench.sources import SOURCES
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


def _sha256(path: Path, cache: Path) -> str:
    """The file's SHA-256, remembered in ``cache`` by path, size and mtime: a GGUF of several GB is hashed once,
    not at every resume."""
    stat = path.stat()
    stamp = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known = json.loads(cache.read_text())
        if known.get("stamp") == stamp:
            return str(known["sha256"])
    except (OSError, ValueError, AttributeError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"stamp": stamp, "sha256": digest.hexdigest()}))
    return digest.hexdigest()


def environment(state_dir: Path, model_file: str | None, local: bool, out: Path) -> dict[str, Any]:
    """What produced the numbers: the Python and package versions, and the model file with its hash:
    ``--model-file``, else, when the proxy is this machine's, the one ``atlas up`` serves from ``state_dir``."""
    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                           "cpus": os.cpu_count(), "versions": {}}
    for package in ("atlas-bench", "atlas-engine", "atlas-rag-api", "atlas-core", "llama_cpp_python"):
        try:
            env["versions"][package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    if model_file is None and local:
        try:
            model_file = json.loads((state_dir / "run" / "llama-server.json").read_text())["models"][0]["model"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            model_file = None  # not beside atlas up, or another layout: the model goes unrecorded
    if model_file and Path(model_file).is_file():
        path = Path(model_file)
        env["model"] = {"file": path.name, "sha256": _sha256(path, out / ".model-sha256.json"),
                        "bytes": path.stat().st_size}
    return env


def cmd_run(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir or os.environ.get("ATLAS_STATE_DIR") or default_state_dir()).expanduser()
    key, signing = platform_keys(state_dir, args.api_key)
    local = local_urls(state_dir)
    url = args.url or local["llm-proxy"]
    if not key or (args.sandbox_url and not signing):
        print("atlas-bench: error: no API key or sandbox signing key: pass --api-key (or ATLAS_API_KEY), with "
              "--sandbox-url set ATLAS_SANDBOX_SIGNING_KEY, or run beside `atlas up` (--state-dir)", file=sys.stderr)
        return 2
    if args.sandbox_url and shares_host(url, args.sandbox_url):
        print(f"atlas-bench: error: --sandbox-url is on the platform under test ({url}): the hidden tests would go "
              "to it; leave --sandbox-url out and a sandbox is started on this machine", file=sys.stderr)
        return 2
    own = own_sandbox(url, args.sandbox_url, signing)
    try:
        loaded = load(args.dataset, data_dir(args), split=args.split, download=args.download,
                      allow_unpinned=args.allow_unpinned, since=args.since, until=args.until, release=args.release,
                      file=Path(args.file) if args.file else None, testtype=args.testtype)
    except DatasetError as exc:
        print(f"atlas-bench: error: {exc}", file=sys.stderr)
        return 2
    problems = loaded.problems[: args.limit] if args.limit else loaded.problems
    if loaded.public_only:
        sent = {"public": "are sent as tests too",
                "none": "are not sent as tests, but the statement shows its samples",
                "stripped": "are hidden (neither sent nor left in the statement)"}[args.send_tests]
        print(f"atlas-bench: warning: {next(iter(loaded.files))} holds the public tests only, so they score the "
              f"answers and {sent}; pass --download (or add livecodebench/test.jsonl) for the private ones",
              file=sys.stderr)
    chosen = set(args.ablations.split(","))
    ordered = tuple(a for a in ABLATIONS if a in chosen)  # one order whatever the order asked: tables line up
    config = BenchConfig(dataset=args.file or args.dataset, k=args.k, ablations=ordered,
                         seeds=tuple(int(s) for s in args.seeds.split(",")), repair_rounds=args.repair_rounds,
                         max_tokens=args.max_tokens, concurrency=args.concurrency, send_tests=args.send_tests,
                         plans=args.plans,
                         extra={"files": loaded.files, "unpinned": loaded.unpinned, "public_only": loaded.public_only,
                                "split": args.split, "release": args.release, "since": args.since,
                                "until": args.until, "testtype": args.testtype, "limit": args.limit,
                                "version": __version__, "problems": [p.id for p in problems]})
    out = Path(args.out)
    keys = {task_key(p.id, s) for p in problems for s in config.seeds}
    finished = [r for k, r in read_tasks(out).items() if k in keys]
    tally = {"passed": sum(bool(r["ablations"].get(config.ablations[-1], {}).get("passed")) for r in finished),
             "n": len(finished)}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a timeout, a stopped job) ends the run like Ctrl-C: with a report

    previous = signal.signal(signal.SIGTERM, interrupted)
    # A terminal gets the bar; a log file (nohup, CI) gets one line per task instead.
    with Progress(*columns, console=Console(stderr=True), disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(config.dataset, total=len(keys), completed=len(finished), rate="")

        def progress(record: dict[str, Any]) -> None:
            tally["n"] += 1
            tally["passed"] += bool(record["ablations"][config.ablations[-1]]["passed"])
            rate = f"{config.ablations[-1]} {tally['passed'] / tally['n']:.1%}"
            bar.update(task, advance=1, rate=rate)
            if not sys.stderr.isatty():
                print(f"[{tally['n']}/{len(keys)}] {record['id']} seed {record['seed']}: "
                      + ", ".join(f"{a} {'pass' if r['passed'] else r['verdict']}"
                                  for a, r in record["ablations"].items()) + f" ({rate})",
                      file=sys.stderr, flush=True)

        try:
            with ExitStack() as scoring:
                if own:
                    sandbox_url, signing = scoring.enter_context(local_sandbox())
                    print(f"atlas-bench: scoring in a sandbox started on this machine ({sandbox_url}): the hidden "
                          "tests stay here", file=sys.stderr)
                else:
                    sandbox_url = args.sandbox_url or local["sandbox"]
                assert signing is not None  # own_sandbox() is false only with a signing key
                summary = run(problems, config, out, url.rstrip("/").removesuffix("/v1"), key, sandbox_url,
                              signing, progress, environment(state_dir, args.model_file, is_local(url), out))
        except LocalSandboxError as exc:
            print(f"atlas-bench: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # run() has written the report of what finished
            print(f"interrupted: {tally['n']} of {len(keys)} task(s) in {out}; run again to continue",
                  file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
    print(report(summary))
    return 1 if summary["unfinished"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    results = out / "results.json"
    if not results.is_file():
        print(f"atlas-bench: error: {out} holds no results.json: is it a run's --out directory?", file=sys.stderr)
        return 2
    earlier = json.loads(results.read_text())
    config = BenchConfig.from_dict(earlier["config"])
    summary = report_on(config.extra.get("problems"), config, out, earlier.get("environment"))
    write(out, summary)
    print(report(summary))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        print(compare(Path(args.run_a), Path(args.run_b)), end="")
    except FileNotFoundError as exc:
        print(f"atlas-bench: error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and option (docs/benchmark.md names each of ``run``'s; a test checks it)."""
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
    bench.add_argument("--release", default="release_v1", help="LiveCodeBench: release_vN (cumulative), "
                       "release_latest, vN (only that release's new problems) or vA_vB (default release_v1)")
    bench.add_argument("--since", help="LiveCodeBench: contests from this date (YYYY-MM-DD)")
    bench.add_argument("--until", help="LiveCodeBench: contests up to this date (YYYY-MM-DD)")
    bench.add_argument("--testtype", choices=TESTTYPES, help="LiveCodeBench (or a custom file): only the problems "
                       "with this kind of test, stdin (whole programs) or functional (default both)")
    bench.add_argument("--data-path", help="directory of the dataset files (default: ATLAS_DATA_DIR, else ./datasets)")
    bench.add_argument("--download", action="store_true", help="fetch missing files from their original source")
    bench.add_argument("--allow-unpinned", action="store_true", help="accept files that differ from the pinned "
                       "releases (recorded)")
    bench.add_argument("--limit", type=int, help="only the first N problems")
    bench.add_argument("--k", type=int, default=5, help="candidates of the best-of-k ablations (default 5)")
    bench.add_argument("--ablations", default=",".join(DEFAULT_ABLATIONS), help=f"comma-separated, of "
                       f"{', '.join(ABLATIONS)} (default {','.join(DEFAULT_ABLATIONS)})")
    bench.add_argument("--plans", type=int, default=2, help="the plans ablation: how many of the k candidates are "
                       "written from distinct natural-language plans (default 2, below --k)")
    bench.add_argument("--send-tests", choices=SEND_TESTS, default="public", help="public: the problem's public "
                       "tests go with the request, as a user's; none: the prompt alone; stripped: the prompt without "
                       "its worked samples either, so nothing checkable reaches the platform (default public)")
    bench.add_argument("--seeds", default="0", help="comma-separated base seeds (default 0)")
    bench.add_argument("--repair-rounds", type=int, default=2)
    bench.add_argument("--max-tokens", type=int, default=512)
    bench.add_argument("--concurrency", type=int, default=1, help="tasks in flight at once")
    bench.add_argument("--out", required=True, help="output directory (a re-run continues there)")
    bench.add_argument("--url", help="the proxy (default: the one atlas up runs from --state-dir, else "
                       "http://127.0.0.1:8000)")
    bench.add_argument("--api-key", help="sk-llm- key (default: ATLAS_API_KEY, else the one atlas up kept)")
    bench.add_argument("--state-dir", help="atlas up's state directory, for the key, the sandbox signing key and the "
                       "URLs (default: ATLAS_STATE_DIR, else atlas up's default)")
    bench.add_argument("--sandbox-url", help="the sandbox that scores answers, with ATLAS_SANDBOX_SIGNING_KEY "
                       "(default: atlas up's beside a local proxy; against a remote --url, or without a signing "
                       "key, one started on this machine for the run)")
    bench.add_argument("--model-file", help="the GGUF the platform serves, to record its hash (default: the one "
                       "atlas up serves from --state-dir)")
    rebuild = sub.add_parser("report", help="rebuild a run's results.json, report.md and plots from its tasks")
    rebuild.add_argument("dir", help="the run's --out directory")
    diff = sub.add_parser("compare", help="compare two runs: rates per ablation and per-task flips")
    diff.add_argument("run_a", help="the first run's --out directory")
    diff.add_argument("run_b", help="the second run's --out directory")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return
    if args.command == "run":
        unknown = set(args.ablations.split(",")) - set(ABLATIONS)
        if unknown:
            parser.error(f"unknown ablation(s) {', '.join(sorted(unknown))}: use {', '.join(ABLATIONS)}")
        if "plans" in args.ablations.split(",") and not 0 <= args.plans < args.k:
            # the contract's bound: plan-written candidates are some of the k, never the first (always direct)
            parser.error(f"--plans must be 0 to --k - 1 ({args.k - 1}): the first candidate is always direct")
        sys.exit(cmd_run(args))
    commands = {"datasets": cmd_datasets, "report": cmd_report, "compare": cmd_compare}
    sys.exit(commands[args.command](args))


if __name__ == "__main__":
    main()
