"""``atlas``: run and operate the ATLAS platform.

    atlas up [--state-dir DIR] [--model GGUF]   start everything, wait until ready, print the URLs
    atlas status [--json]                       each process: pid, port, ready or not
    atlas logs SERVICE [-n N] [-f]              a process's log
    atlas down                                  stop everything, leaving no process behind
    atlas keys create|list|revoke               manage sk-llm- API keys as the admin
    atlas solve FILE [--tests FILE]             verified code for a problem, through POST /v1/solve
    atlas task submit|follow|show|cancel|list   durable tasks, through /v1/tasks
    atlas project sync|search|create|list|show|delete   code retrieval projects, through /v1/projects
    atlas sandbox-key                           print the sandbox's verify key for a signing key
    atlas k8s get|secrets|render|smoke          what scripts/k8s/*.sh need (docs/kubernetes.md)
    atlas bench ...                             the benchmark suite (atlas-bench), beside this install
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from atlas_cli import admin, k8s, keys, lens, project, router, runner, solve, task
from atlas_cli.plan import log_dir
from atlas_core.capability import public_key_text
from atlas_core.settings import SettingsError, conf_path, default_state_dir, read_conf


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str, code: int = 1) -> int:
    print(f"atlas: error: {message}", file=sys.stderr)
    return code


def _state_dir(args: argparse.Namespace) -> Path:
    """The state directory, resolved leniently: `status`, `logs` and `down` must work even when the
    configuration has since gained a bad key, and from any working directory."""
    chosen = args.state_dir or os.environ.get("ATLAS_STATE_DIR")
    if not chosen:
        path = args.conf or conf_path()
        chosen = read_conf(path).get("ATLAS_STATE_DIR") if path is not None else None
    return Path(chosen).expanduser().resolve() if chosen else default_state_dir()


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'SERVICE':<17} {'URL':<27} {'PID':>7}  {'STATUS':<10} DETAIL"]
    for row in rows:
        state = "ready" if row["ready"] else row["status"]
        detail = "" if row["ready"] else row["detail"]
        lines.append(f"{row['name']:<17} {row['url']:<27} {row['pid'] or '-':>7}  {state:<10} {detail}")
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    overrides = {"ATLAS_STATE_DIR": args.state_dir or "", "ATLAS_MODEL_PATH": args.model or ""}
    config = runner.prepare(overrides, args.conf)
    runner.up(config, _say)
    report = runner.status(config.state_dir)
    print()
    print(_table(report["services"]))
    print(f"\nATLAS is up (state directory {config.state_dir}); stop it with `atlas down`")
    urls = {row["name"]: row["url"] for row in report["services"]}
    if "dashboard" in urls:
        print(f"Dashboard: {urls['dashboard']} (sign in with your ATLAS account; the first is admin)")
    if "api-portal" in urls:
        print(f"Keys: {urls['api-portal']}/ui")
    return 0 if all(r["ready"] for r in report["services"]) else 1


def cmd_status(args: argparse.Namespace) -> int:
    report = runner.status(_state_dir(args))
    if args.json:
        print(json.dumps(report, indent=2))
    elif not report["running"]:
        print(f"ATLAS is not running (state directory {report['state_dir']})")
    else:
        print(_table(report["services"]))
    if not report["running"]:
        return 3
    return 0 if all(r["ready"] for r in report["services"]) else 1


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    stopped = runner.down(state_dir)
    print("ATLAS stopped" if stopped else f"ATLAS was not running (state directory {state_dir})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    logs = log_dir(_state_dir(args))
    path = logs / f"{args.service}.log"
    if not path.is_file():
        names = sorted(p.stem for p in logs.glob("*.log")) if logs.is_dir() else []
        known = ", ".join(names) or "none yet: run `atlas up` first"
        return _fail(f"no log for '{args.service}'; logs exist for: {known}")
    for line in runner.tail(path, args.lines):
        print(line)
    if args.follow:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            try:
                while True:
                    chunk = handle.read()
                    if chunk:
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def cmd_sandbox_key(args: argparse.Namespace) -> int:
    """The public key the sandbox needs (ATLAS_SANDBOX_VERIFY_KEY) for the signing secret rag-api and the
    task-worker hold: read from stdin, never from the command line (where `ps` would show it)."""
    secret = sys.stdin.readline().strip()
    if not secret:
        return _fail("give ATLAS_SANDBOX_SIGNING_KEY on standard input, e.g. `atlas sandbox-key < secret.txt`")
    print(public_key_text(secret))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="state directory (default: ATLAS_STATE_DIR or ~/.local/state/atlas)")
    common.add_argument("--conf", type=Path, help="config file (default: ATLAS_CONF or ./atlas.conf)")
    top = argparse.ArgumentParser(prog="atlas", description="Run and operate the ATLAS platform.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", parents=[common], help="start every service and wait until all are ready")
    up.add_argument("--model", help="GGUF file for llama-server A (default: ATLAS_MODEL_PATH or SmolLM2-135M)")
    up.set_defaults(func=cmd_up)
    status = sub.add_parser("status", parents=[common], help="show each service: pid, port, ready or not")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", parents=[common], help="print a service's log")
    logs.add_argument("service", help="service name, as `atlas status` lists it, or 'supervisor'")
    logs.add_argument("-n", "--lines", type=_positive, default=50, help="lines to show (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.set_defaults(func=cmd_logs)
    down = sub.add_parser("down", parents=[common], help="stop every service, leaving no process behind")
    down.set_defaults(func=cmd_down)
    keys.add_parser(sub, common).set_defaults(func=lambda args: keys.run(args, _state_dir(args)))
    admin.add_parser(sub, common).set_defaults(func=lambda args: admin.run(args, _state_dir(args)))
    solve.add_parser(sub, common).set_defaults(func=lambda args: solve.run(args, _state_dir(args)))
    task.add_parser(sub, common).set_defaults(func=lambda args: task.run(args, _state_dir(args)))
    project.add_parser(sub, common).set_defaults(func=lambda args: project.run(args, _state_dir(args)))
    lens.add_parser(sub, common).set_defaults(func=lambda args: lens.run(args, _state_dir(args)))
    router.add_parser(sub, common).set_defaults(func=lambda args: router.run(args, _state_dir(args)))
    k8s.add_parser(sub, common).set_defaults(func=lambda args: k8s.run(args, _state_dir(args)))
    sandbox_key = sub.add_parser("sandbox-key", help="print the sandbox verify key for the signing key on stdin")
    sandbox_key.set_defaults(func=cmd_sandbox_key)
    # Listed for --help only: main() hands everything after `bench` to atlas-bench untouched.
    sub.add_parser("bench", add_help=False,
                   help="the benchmark suite, the same program as atlas-bench: run, report, compare, datasets")
    return top


def bench(argv: list[str]) -> None:
    """``atlas bench ARGS`` is ``atlas-bench ARGS``, when the benchmark package is installed."""
    if importlib.util.find_spec("atlas_bench") is None:
        raise SystemExit(_fail("atlas bench needs the atlas-bench package: pip install -c constraints.txt "
                               "./benchmark (make install has it)", 2))
    from atlas_bench.__main__ import main as bench_main

    bench_main(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        bench(argv[1:])
        return
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except (SettingsError, runner.UpError) as exc:
        code = _fail(str(exc), 2 if isinstance(exc, SettingsError) else 1)
    except OSError as exc:  # a state directory or model file we may not read or write
        code = _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
