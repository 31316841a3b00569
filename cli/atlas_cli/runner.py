"""``atlas up``, ``atlas status`` and ``atlas down``: the supervisor's life cycle seen from the command line."""

from __future__ import annotations

import errno
import fcntl
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from atlas_cli.config import LocalRunConfig, gather, load_runner, resolve, secret_keys
from atlas_cli.keys import save_admin
from atlas_cli.plan import (
    LOCK_FILE,
    ServiceSpec,
    build_plan,
    clear_run_files,
    load_plan,
    log_dir,
    run_dir,
    save_plan,
    write_private,
)
from atlas_cli.process import alive, group_alive, stop_groups
from atlas_cli.secrets import ensure_secrets, ensure_state_dir

PROBE_TIMEOUT_S = 2.0
INITIALIZED = "initialized"


class UpError(Exception):
    """``atlas up`` cannot go on; the message says what and how to fix it."""


@dataclass
class RunningService:
    supervisor_pid: int
    services: dict[str, dict[str, Any]]


def prepare(overrides: dict[str, str], conf_file: Path | None) -> LocalRunConfig:
    """Merge config, generate missing secrets, validate every service: before anything starts."""
    values = gather(overrides, conf_file)
    runner = load_runner(values)
    ensure_state_dir(runner.state_dir)
    generated = ensure_secrets(runner.state_dir, secret_keys())
    return resolve(values, generated)


def check_ports(specs: list[ServiceSpec]) -> None:
    owners = Counter(s.port for s in specs)
    for spec in specs:
        if owners[spec.port] > 1:
            clash = [s.name for s in specs if s.port == spec.port]
            raise UpError(f"port {spec.port} is configured for both {' and '.join(clash)}: give each its own")
    for spec in specs:
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As the servers themselves do: sockets of a just-stopped platform in TIME_WAIT are no conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((spec.host, spec.port))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise UpError(f"{spec.name} is set to bind {spec.host}, which is not an address of this "
                                  "machine: fix its ATLAS_*_HOST") from None
                raise UpError(
                    f"port {spec.port} ({spec.name}) is already in use: stop what holds it "
                    f"(`ss -ltnp 'sport = :{spec.port}'`) or choose another port in atlas.conf"
                ) from None


@contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """One `atlas up` or `atlas down` at a time per state directory."""
    directory = run_dir(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpError(f"another atlas command is starting or stopping {state_dir}; wait for it") from None
        yield


def probe(spec: ServiceSpec) -> tuple[str | None, str]:
    """``(None when the process is ready else the reason it is not, what to report)``: a ready service's
    warnings (Redis near its maxmemory) are reported too."""
    try:
        if spec.probe == "redis":
            client = redis.Redis.from_url(spec.probe_url, password=spec.probe_token,
                                          socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
            try:
                client.ping()
            finally:
                client.close()
            return None, "ok"
        headers = {"Authorization": f"Bearer {spec.probe_token}"} if spec.probe_token else {}
        response = httpx.get(spec.probe_url, headers=headers, timeout=PROBE_TIMEOUT_S)
        try:
            body = response.json()
            failing = ", ".join(f"{k}: {v}" for k, v in body.get("checks", {}).items() if v != "ok")
            warnings = "; ".join(f"warning: {v}" for v in body.get("warnings", {}).values())
        except (ValueError, AttributeError):
            failing = warnings = ""
        if response.status_code == 200:
            return None, warnings or "ok"
        reason = f"HTTP {response.status_code}" + (f" ({failing})" if failing else "")
        return reason, reason
    except (httpx.HTTPError, redis.RedisError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return reason, reason


def running(state_dir: Path) -> RunningService | None:
    """The live supervisor of ``state_dir`` and its services' records, or None."""
    pid_file = run_dir(state_dir) / "supervisor.pid"
    try:
        pid, started = (int(x) for x in pid_file.read_text().split())
    except (OSError, ValueError):
        return None
    if not alive(pid, started):
        return None
    return RunningService(supervisor_pid=pid, services=_records(state_dir))


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            return handle.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def spawn_supervisor(state_dir: Path) -> int:
    """Start the supervisor (it detaches and writes ``run/supervisor.pid``) and return its pid."""
    logs = log_dir(state_dir)
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in ("supervisor.pid", "state.json"):
        (run_dir(state_dir) / stale).unlink(missing_ok=True)
    with open(logs / "supervisor.log", "ab") as output:
        launcher = subprocess.run(
            [sys.executable, "-m", "atlas_cli.supervisor", str(state_dir)], stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT, cwd=state_dir, start_new_session=True, timeout=30,
            check=False,
        )
    deadline = time.monotonic() + 10
    while (live := running(state_dir)) is None:
        if launcher.returncode != 0 or time.monotonic() > deadline:
            raise UpError("the supervisor did not start; see `atlas logs supervisor`")
        time.sleep(0.02)
    return live.supervisor_pid


def wait_ready(state_dir: Path, specs: list[ServiceSpec], timeout_s: float, say: Any) -> None:
    start = time.monotonic()
    pending = {s.name: s for s in specs}
    reasons: dict[str, str] = {}
    while pending:
        live = running(state_dir)
        if live is None:
            raise UpError("the supervisor exited during start-up; see `atlas logs supervisor`")
        for name, spec in list(pending.items()):
            record = live.services.get(name, {})
            if record.get("status") == "failed":
                raise UpError(f"{name} keeps crashing; its log ends with:\n  " +
                              "\n  ".join(tail(log_dir(state_dir) / f"{name}.log", 15)))
            reason, _ = probe(spec)
            if reason is None:
                say(f"  ready  {name:<17} {time.monotonic() - start:6.1f}s")
                del pending[name]
            else:
                reasons[name] = reason
        if pending and time.monotonic() - start > timeout_s:
            name = next(iter(pending))
            raise UpError(
                f"{', '.join(pending)} not ready after {timeout_s:.0f}s ({name}: {reasons.get(name)}); "
                f"the log of {name} ends with:\n  " + "\n  ".join(tail(log_dir(state_dir) / f"{name}.log", 15))
                + "\n(raise ATLAS_UP_TIMEOUT_S on a slow machine)"
            )
        time.sleep(0.3)


def up(config: LocalRunConfig, say: Any) -> list[ServiceSpec]:
    """Start everything and wait until each process is ready; on any failure stop it all again."""
    state_dir = config.state_dir
    with state_lock(state_dir):
        if running(state_dir) is not None:
            specs, _ = load_plan(state_dir)
            say(f"ATLAS is already running (state directory {state_dir})")
            return specs
        specs = build_plan(config)
        check_ports(specs)
        save_plan(state_dir, specs, config.runner.stop_timeout_s)
        say(f"starting {len(specs)} processes (logs in {log_dir(state_dir)})")
        try:
            spawn_supervisor(state_dir)
            wait_ready(state_dir, specs, config.runner.up_timeout_s, say)
            first_start(config, say)
        except BaseException:
            _stop(state_dir, config.runner.stop_timeout_s)
            raise
    return specs


def first_start(config: LocalRunConfig, say: Any) -> None:
    """Steps that run once, on the first successful ``atlas up`` of a state directory: the portal creates the
    admin and a first key, shown here once and kept (0600) in ``admin.json`` for ``atlas keys``."""
    state_dir = config.state_dir
    marker = state_dir / INITIALIZED
    if marker.exists():
        return
    portal_url = config.values["ATLAS_PORTAL_URL"]
    try:
        response = httpx.post(f"{portal_url}/internal/bootstrap", timeout=30,
                              headers={"Authorization": f"Bearer {config.values['ATLAS_RECOVERY_TOKEN']}"})
    except httpx.HTTPError as exc:
        raise UpError(f"the portal did not answer the first-start bootstrap: {type(exc).__name__}") from None
    if response.status_code == 201:
        admin = response.json()
        path = save_admin(state_dir, {**admin, "portal_url": portal_url,
                                      "api_url": config.values["ATLAS_PUBLIC_API_URL"]})
        say(f"first start: admin account '{admin['username']}', password {admin['password']}")
        say(f"             first API key {admin['key']}")
        say(f"             shown once; kept for the atlas CLI in {path} (mode 0600)")
    elif response.status_code == 409:
        say("first start: the portal database already has an admin; no new credentials were made")
    else:
        raise UpError(f"the portal could not bootstrap the admin (HTTP {response.status_code}): {response.text[:200]}")
    write_private(marker, time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def down(state_dir: Path) -> int:
    """Stop the supervisor and everything it started; returns how many process groups were stopped."""
    with state_lock(state_dir):
        try:
            _, timeout_s = load_plan(state_dir)
        except (OSError, ValueError, KeyError, TypeError):
            timeout_s = 10.0
        return _stop(state_dir, timeout_s)


def _stop(state_dir: Path, timeout_s: float) -> int:
    live = running(state_dir)
    records = _records(state_dir)  # read first: the supervisor removes the file once it has stopped
    services = [r["pid"] for r in records.values() if r.get("pid") and alive(r["pid"], r.get("started"))]
    if live is not None:
        # It stops its children itself: services, then Redis, each given timeout_s.
        stop_groups([live.supervisor_pid], 2 * timeout_s + 5.0)
    # Whatever survived, from the records even when the supervisor itself is gone (killed, out of memory):
    # every recorded service's whole process group, grandchildren included.
    stop_groups([pid for pid in services if group_alive(pid)], 1.0)
    clear_run_files(state_dir)
    return len(services) + (live is not None)


def _records(state_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        records: dict[str, dict[str, Any]] = json.loads((run_dir(state_dir) / "state.json").read_text())["services"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return records


def status(state_dir: Path) -> dict[str, Any]:
    live = running(state_dir)
    if live is None:
        return {"state_dir": str(state_dir), "running": False, "services": []}
    specs, _ = load_plan(state_dir)
    rows = []
    for spec in specs:
        record = live.services.get(spec.name, {})
        reason, detail = probe(spec)
        rows.append({"name": spec.name, "pid": record.get("pid"), "port": spec.port, "url": spec.url,
                     "ready": reason is None, "status": record.get("status", "starting"),
                     "restarts": record.get("restarts", 0), "detail": detail})
    return {"state_dir": str(state_dir), "running": True, "supervisor_pid": live.supervisor_pid,
            "services": rows}

