"""make bench-sandbox: what isolation costs, measured side by side in one run.

1. The median and p95 time of a trivial Python program (``pass``) run (a) as a bare subprocess, (b) through the
   sandbox's runner (bubblewrap with every namespace, seccomp, rlimits, the run uid, and a cgroup), (b') the
   same without the per-run cgroup (ATLAS_SANDBOX_CGROUPS=false), and (c) through the HTTP service's
   /execute (a fresh capability token each call; /execute also runs the syntax check, so it is two
   sandboxed runs). Rounds interleave all four so machine noise hits them alike.
2. Throughput: trivial runs per second with every worker busy, through the runner and through /judge.
3. One /judge call of a fast stdin program (Python, and C) against 1,000 tests, with and without cgroups.

Writes JSON (--out) and prints a markdown table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from atlas_core.capability import mint, public_key_text, signing_key
from atlas_core.settings import load_settings
from atlas_sandbox.app import create_app
from atlas_sandbox.executor import Executor
from atlas_sandbox.settings import Settings

PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_ms": round(statistics.median(values), 3), "p95_ms": round(pct(values, 0.95), 3),
            "mean_ms": round(statistics.fmean(values), 3)}


class Service:
    """Redis and the sandbox service on free ports, as `atlas up` runs them (uvicorn in a thread)."""

    def __init__(self, workdir: Path) -> None:
        import threading

        import uvicorn

        self.redis_port, self.port = free_port(), free_port()
        password = secrets.token_urlsafe(24)
        redis = shutil.which("redis-server") or "redis-server"
        self.redis = subprocess.Popen([redis, "--port", str(self.redis_port), "--save", "", "--appendonly", "no",
                                       "--requirepass", password, "--bind", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.secret = secrets.token_urlsafe(32)
        env = {"ATLAS_METRICS_TOKEN": secrets.token_urlsafe(32),
               "ATLAS_SANDBOX_VERIFY_KEY": public_key_text(self.secret),
               "ATLAS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "ATLAS_REDIS_PASSWORD": password,
               "ATLAS_STATE_DIR": str(workdir), "ATLAS_SANDBOX_PORT": str(self.port), "ATLAS_LOG_LEVEL": "WARNING"}
        self.settings = load_settings(Settings, environ=env, read_conf_file=False)
        self.key = signing_key(self.secret)
        time.sleep(0.3)
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port,
                                                    log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        token = mint(self.key, issuer="bench", task_id="bench", languages=["python", "c"])
        response = self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.redis.terminate()
        self.redis.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="trivial runs per target")
    parser.add_argument("--throughput-runs", type=int, default=400)
    parser.add_argument("--tests", type=int, default=1000, help="tests in the judge call")
    parser.add_argument("--out", type=Path, default=Path("bench-results/sandbox.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="atlas-bench-sandbox-"))
    service = Service(work)
    executor: Executor = service.server.config.app.state.executor  # type: ignore[attr-defined]
    bare_dir = Path(tempfile.mkdtemp())
    (bare_dir / "main.py").write_text("pass\n")
    box_dir = executor.dirs.new()
    executor.runner.prepare_workdir(box_dir)
    (box_dir / "main.py").write_text("pass\n")
    (box_dir / "main.py").chmod(0o644)
    root = executor.runner.work_root(box_dir)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "python": sys.version.split()[0]},
                               "features": executor.features, "workers": executor.workers}
    try:
        groups = executor.runner.cgroups
        bare, runner, runner_nocg, http = [], [], [], []
        for _ in range(10):  # warm-up
            subprocess.run([PYTHON, "-B", str(bare_dir / "main.py")], check=True)
            executor.runner.run([PYTHON, "-B", f"{root}/main.py"], box_dir, executor.limits)
            service.post("/execute", {"code": "pass"})
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([PYTHON, "-B", str(bare_dir / "main.py")], check=True)
            bare.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            res = executor.runner.run([PYTHON, "-B", f"{root}/main.py"], box_dir, executor.limits)
            runner.append((time.perf_counter() - t) * 1000)
            assert res.exit_code == 0, res
            executor.runner.cgroups = None
            t = time.perf_counter()
            res = executor.runner.run([PYTHON, "-B", f"{root}/main.py"], box_dir, executor.limits)
            runner_nocg.append((time.perf_counter() - t) * 1000)
            executor.runner.cgroups = groups
            assert res.exit_code == 0, res
            t = time.perf_counter()
            assert service.post("/execute", {"code": "pass"})["success"]
            http.append((time.perf_counter() - t) * 1000)
        results["trivial_run"] = {
            "a_bare_subprocess": summary(bare), "b_sandbox_runner": summary(runner),
            "b_sandbox_runner_no_cgroup": summary(runner_nocg), "c_http_execute": summary(http),
            "b_minus_a_median_ms": round(statistics.median(runner) - statistics.median(bare), 3),
            "b_no_cgroup_minus_a_median_ms": round(statistics.median(runner_nocg) - statistics.median(bare), 3)}

        def one(_: int) -> None:
            res = executor.runner.run([PYTHON, "-B", f"{root}/main.py"], box_dir, executor.limits)
            assert res.exit_code == 0

        with ThreadPoolExecutor(executor.workers) as pool:
            t = time.perf_counter()
            list(pool.map(one, range(args.throughput_runs)))
            elapsed = time.perf_counter() - t
        judge_runs = 200
        t = time.perf_counter()
        out = service.post("/judge", {"mode": "stdin", "candidates": [{"code": "pass"}],
                                      "tests": [{"input": str(i), "output": ""} for i in range(judge_runs)]})
        judge_elapsed = time.perf_counter() - t
        assert out["candidates"][0]["verdict"] == "passed"
        results["throughput"] = {"runner_runs_per_s": round(args.throughput_runs / elapsed, 1),
                                 "judge_runs_per_s": round(judge_runs / judge_elapsed, 1)}

        judges = {}
        c_code = "#include <stdio.h>\nint main(){long x;scanf(\"%ld\",&x);printf(\"%ld\\n\",2*x);}"
        for cgroups in (True, False):
            executor.runner.cgroups = groups if cgroups else None
            for language, code in (("python", "print(int(input()) * 2)"), ("c", c_code)):
                tests = [{"input": f"{i}\n", "output": str(2 * i)} for i in range(args.tests)]
                t = time.perf_counter()
                out = service.post("/judge", {"mode": "stdin", "language": language, "candidates": [{"code": code}],
                                              "tests": tests, "limits": {"memory_mb": 500 + cgroups}})  # no cache hit
                wall = time.perf_counter() - t
                cand = out["candidates"][0]
                assert cand["verdict"] == "passed" and cand["tests_passed"] == args.tests, cand
                judges[f"{language}{'' if cgroups else ' (no cgroup)'}"] = {"tests": args.tests,
                                                                           "wall_s": round(wall, 3)}
        executor.runner.cgroups = groups
        # The floor for the Python judge: the same 1,000 runs as bare subprocesses, as many at once as workers.
        prog = bare_dir / "double.py"
        prog.write_text("print(int(input()) * 2)\n")

        def bare_run(i: int) -> None:
            out = subprocess.run([PYTHON, "-B", str(prog)], input=f"{i}\n", capture_output=True, text=True,
                                 check=True)
            assert out.stdout.strip() == str(2 * i)

        with ThreadPoolExecutor(executor.workers) as pool:
            t = time.perf_counter()
            list(pool.map(bare_run, range(args.tests)))
            judges["python bare subprocesses (no sandbox, no judge)"] = {
                "tests": args.tests, "wall_s": round(time.perf_counter() - t, 3)}
        results["judge_1000_stdin"] = judges
    finally:
        executor.dirs.remove(box_dir)
        service.close()
        shutil.rmtree(bare_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    tr = results["trivial_run"]
    print(json.dumps(results, indent=2))
    print("\n| measure | median | p95 |\n|---|---|---|")
    for label, key in (("(a) bare subprocess", "a_bare_subprocess"), ("(b) sandbox runner", "b_sandbox_runner"),
                       ("(b') runner without cgroup", "b_sandbox_runner_no_cgroup"),
                       ("(c) HTTP /execute", "c_http_execute")):
        print(f"| {label} | {tr[key]['median_ms']:.2f} ms | {tr[key]['p95_ms']:.2f} ms |")
    print(f"| (b) - (a) | {tr['b_minus_a_median_ms']:.2f} ms | |")
    print(f"| (b') - (a) | {tr['b_no_cgroup_minus_a_median_ms']:.2f} ms | |")
    print(f"| runner throughput | {results['throughput']['runner_runs_per_s']} runs/s | |")
    print(f"| /judge throughput | {results['throughput']['judge_runs_per_s']} runs/s | |")
    for language, j in results["judge_1000_stdin"].items():
        print(f"| /judge {j['tests']} stdin tests ({language}) | {j['wall_s']:.2f} s | |")


if __name__ == "__main__":
    main()
