"""Runs one compiled candidate against many stdin tests, inside its sandbox (file copied into the work dir).

One sandbox per candidate instead of one per test: bubblewrap's start (namespaces, mounts, cgroup) is paid
once, and each test costs only its program's own start. Each test still runs in a fresh process with its own
time, CPU, output (RLIMIT_FSIZE on its stdout file) and address-space limits, in its own process group, killed
whole after it ends. Prints one JSON line per finished test; the service reads them.
Usage: python3 driver.py < SPEC (JSON on stdin, see judge_tests.stdin_batch). The spec, with the expected outputs,
never touches the work dir, and the driver makes itself non-dumpable before any test runs, so a program
(same uid, same pid namespace) can neither read the expected outputs nor open the driver's result pipe.
"""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# atlas_compare is compare.py, copied beside this file
from atlas_compare import MEMORY_WORDS, stdin_digest, stdin_matches  # type: ignore[import-not-found]

SHOWN = 2000
SHOWN_OUTPUT = 300  # with "collect": what a test that ran to the end sends back beside its output's digest
PR_SET_DUMPABLE = 4


def main() -> None:
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    spec = json.load(sys.stdin)
    tests, stop, window = spec["tests"], spec["stop_on_first_failure"], max(1, spec["parallel"])
    collect = bool(spec.get("collect"))  # no expected outputs: digest each output instead of comparing it
    deadline = time.monotonic() + spec["budget_s"]
    prefix = ["prlimit", f"--cpu={spec['cpu_s']}:{spec['cpu_s'] + 1}",
              f"--fsize={spec['output_bytes']}:{spec['output_bytes']}", f"--nproc={spec['processes']}",
              f"--nofile={spec['open_files']}", "--core=0"]
    if spec.get("address_space"):
        prefix.append(f"--as={spec['address_space']}:{spec['address_space']}")
    command = [*prefix, "--", *spec["command"]]

    def run(i: int) -> dict[str, Any]:
        try:
            return run_test(i)
        except Exception as exc:  # the driver must outlive anything one test does
            return {"i": i, "error_type": "RuntimeError", "error": f"{type(exc).__name__}: {exc}"[:SHOWN]}

    def run_test(i: int) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"i": i, "skipped": True}
        budget = min(spec["timeout_s"], remaining)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            try:
                proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                        start_new_session=True)
            except OSError as exc:  # another test of this candidate exhausted the processes or memory
                return {"i": i, "error_type": "RuntimeError", "error": f"could not start the program: {exc}"}
            timed_out = False
            try:
                proc.communicate(tests[i]["input"].encode(), timeout=budget)
            except subprocess.TimeoutExpired:
                timed_out = True
            except BrokenPipeError:
                proc.wait(timeout=budget)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the test's background children too
            proc.wait()
            elapsed = (time.monotonic() - started) * 1000
            out.seek(0)
            got = out.read(spec["output_bytes"] + 1)
            err.seek(0)
            errors = err.read()[-4096:]
        code = proc.returncode
        result: dict[str, Any] = {"i": i, "time_ms": round(elapsed, 3)}
        if timed_out and budget < spec["timeout_s"]:
            return {"i": i, "skipped": True}
        if timed_out or code == -signal.SIGXCPU:
            result.update(error_type="Timeout", error=f"exceeded the time limit ({spec['timeout_s']:g} s)")
        elif code == -signal.SIGXFSZ or len(got) > spec["output_bytes"]:
            result.update(error_type="OutputLimit", error="wrote more than the output limit")
        elif code != 0 and any(word in errors for word in MEMORY_WORDS):
            result.update(error_type="MemoryLimit", error="exceeded the memory limit")
        elif code != 0:
            text = errors.decode("utf-8", "replace").strip()[-SHOWN:]
            name = signal.Signals(-code).name if code < 0 and -code in signal.Signals._value2member_map_ else ""
            reason = f"killed by {name}" if name else f"exit code {code}"
            result.update(error_type="RuntimeError", error=text or reason)
        else:
            text = got.decode("utf-8", "replace")
            if collect:
                return {**result, "digest": stdin_digest(text), "got": text[:SHOWN_OUTPUT]}
            if stdin_matches(text, tests[i]["output"]):
                return result
            result.update(error_type="TestFailure", error="wrong answer")
        result["got"] = got.decode("utf-8", "replace")[:SHOWN]
        return result

    following, failed = 0, False
    with ThreadPoolExecutor(window) as pool:
        running: set[Future[dict[str, Any]]] = set()
        while following < len(tests) or running:
            while following < len(tests) and len(running) < window and not failed:
                running.add(pool.submit(run, following))
                following += 1
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                sys.stdout.write(json.dumps(result) + "\n")
                sys.stdout.flush()
                if result.get("error_type") and stop:
                    failed = True


if __name__ == "__main__":
    main()
