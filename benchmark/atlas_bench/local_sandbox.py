"""A sandbox of the benchmark's own, on this machine, for scoring a platform it does not run (a remote cluster):
the hidden tests then never leave this machine, and the platform under test sees only what a user sends.

It is the real sandbox service (``python -m atlas_sandbox``, from the atlas-sandbox package ``atlas`` installs) on
a free loopback port, with a signing key made for this run and its single-use token record in its own memory
(``ATLAS_SANDBOX_REPLAY_CACHE=memory``: no Redis to start). It stops when the run ends.

Usage::

    with local_sandbox() as (sandbox_url, signing_key):
        run(problems, config, out, "https://atlas.example.com", key, sandbox_url, signing_key)
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from atlas_core.capability import public_key_text

START_TIMEOUT_S = 60.0
# Keys of the caller's environment the sandbox keeps: the basics, and its own tuning (ATLAS_SANDBOX_ISOLATION,
# ATLAS_SANDBOX_WORKERS, ...) except the keys this module sets. Nothing else (cloud credentials, the platform's
# API key) reaches it.
PASS = ("PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH")
OWN = {"ATLAS_SANDBOX_HOST", "ATLAS_SANDBOX_PORT", "ATLAS_SANDBOX_VERIFY_KEY", "ATLAS_SANDBOX_SIGNING_KEY",
       "ATLAS_SANDBOX_URL", "ATLAS_SANDBOX_REPLAY_CACHE"}


class LocalSandboxError(Exception):
    """The local sandbox could not start: one line for the user."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-1500:].strip()
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def local_sandbox(timeout_s: float = START_TIMEOUT_S) -> Iterator[tuple[str, str]]:
    """Start the sandbox, yield ``(sandbox URL, signing key)`` once it is ready, stop it."""
    if importlib.util.find_spec("atlas_sandbox") is None:
        raise LocalSandboxError("scoring needs a sandbox: install atlas-sandbox (`pip install -c constraints.txt "
                                "./core ./sandbox`; `make install` has it) for a local one, or pass --sandbox-url "
                                "and ATLAS_SANDBOX_SIGNING_KEY")
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="atlas-bench-sandbox-")))
        base = {k: os.environ[k] for k in PASS if k in os.environ}
        port = _free_port()
        signing = secrets.token_urlsafe(32)
        env = base | {k: v for k, v in os.environ.items() if k.startswith("ATLAS_SANDBOX_") and k not in OWN} | {
            "ATLAS_SANDBOX_HOST": "127.0.0.1", "ATLAS_SANDBOX_PORT": str(port),
            "ATLAS_SANDBOX_VERIFY_KEY": public_key_text(signing),
            "ATLAS_METRICS_TOKEN": secrets.token_urlsafe(32),
            "ATLAS_SANDBOX_REPLAY_CACHE": "memory", "ATLAS_STATE_DIR": str(work / "state"),
            "ATLAS_LOG_LEVEL": os.environ.get("ATLAS_LOG_LEVEL", "WARNING"),
        }
        # cwd is the private directory, so an atlas.conf where the benchmark runs is not read for the sandbox.
        with (work / "sandbox.log").open("wb") as out:
            sandbox = subprocess.Popen([sys.executable, "-m", "atlas_sandbox"], stdout=out, stderr=subprocess.STDOUT,
                                       env=env, cwd=work)
        stack.callback(_stop, sandbox)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            if sandbox.poll() is not None:
                raise LocalSandboxError(f"the local sandbox exited ({sandbox.returncode}): "
                                        f"{_tail(work / 'sandbox.log')}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LocalSandboxError(f"the local sandbox was not ready within {timeout_s:.0f} s: "
                                        f"{_tail(work / 'sandbox.log')}")
            time.sleep(0.1)
        yield url, signing
