"""The attack battery: each attack is contained, gets the right verdict, leaves no process, file or cgroup
behind, and the service answers at its normal speed right after."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import METRICS_TOKEN
from tests.sandbox.conftest import Sandbox

FAST = {"timeout_s": 2.0, "cpu_s": 2.0, "memory_mb": 128}


def run_uid_processes(uid: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        if str(uid) in uids:
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            found.append(f"{pid} {fields['State'].strip()} ppid {fields['PPid'].strip()}: "
                         + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def attack(sandbox: Sandbox, code: str, language: str = "python", **fields: Any) -> dict[str, Any]:
    response = sandbox.post("/execute", {"code": code, "language": language, **fields}, limits=FAST)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(autouse=True)
def nothing_left(sandbox: Sandbox) -> Any:
    """After every attack: no process of the run uid, no work directory, no process in a run cgroup."""
    executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    yield
    if os.geteuid() == 0:
        assert run_uid_processes(sandbox.settings.sandbox_run_uid) == []
    assert [p.name for p in executor.dirs.base.iterdir()] == ["seccomp.bpf"]
    if executor.cgroups is not None:  # run cgroups are kept for reuse, empty
        for group in executor.cgroups.idle():
            assert (group / "cgroup.procs").read_text() == ""


def test_fork_bomb_is_capped_by_the_pids_limit(sandbox: Sandbox) -> None:
    out = attack(sandbox, "import os\nwhile True:\n    os.fork()\n")
    # The pids limit stops the forks; 64 interpreters may also reach the memory limit first.
    assert out["error_type"] in ("RuntimeError", "Timeout", "MemoryLimit")
    assert out["success"] is False


def test_shell_fork_bomb(sandbox: Sandbox) -> None:
    out = attack(sandbox, ":(){ :|:& };:\n:", language="bash")
    assert out["success"] is False or out["execution_time_ms"] < 2500


def test_memory_bomb_is_a_memory_limit(sandbox: Sandbox) -> None:
    out = attack(sandbox, "chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n")
    assert out["error_type"] == "MemoryLimit"


def test_memory_bomb_in_c_without_an_address_space_error_is_still_caught(sandbox: Sandbox) -> None:
    code = "#include <stdlib.h>\n#include <string.h>\nint main(){for(;;){char*p=malloc(1<<24);if(!p)return 3;" \
           "memset(p,1,1<<24);}}"
    out = attack(sandbox, code, language="c")
    assert out["error_type"] in ("MemoryLimit", "RuntimeError")
    assert out["success"] is False


def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    out = attack(sandbox, "while True:\n    pass\n")
    assert out["error_type"] == "Timeout"
    assert out["execution_time_ms"] < 4000


def test_busy_threads_time_out(sandbox: Sandbox) -> None:
    code = "import threading\ndef spin():\n    while True: pass\nfor _ in range(8):\n" \
           "    threading.Thread(target=spin, daemon=True).start()\nspin()\n"
    assert attack(sandbox, code)["error_type"] == "Timeout"


def test_sleeping_forever_is_a_wall_clock_timeout(sandbox: Sandbox) -> None:
    assert attack(sandbox, "import time\ntime.sleep(60)\n")["error_type"] == "Timeout"


@pytest.mark.parametrize("address", ["127.0.0.1", "192.0.2.1"])  # the host's loopback; a documentation address
def test_no_network(sandbox: Sandbox, address: str, redis_server: Any) -> None:
    port = redis_server.port if address == "127.0.0.1" else 80
    code = (f"import socket\ns = socket.socket()\ns.settimeout(1)\ntry:\n    s.connect(({address!r}, {port}))\n"
            "    print('CONNECTED')\nexcept OSError as exc:\n    print('blocked', exc)\n")
    out = attack(sandbox, code)
    assert out["stdout"].startswith("blocked"), out


def test_no_service_secrets_in_the_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # the service process has its secrets in its environment (atlas up and Kubernetes pass them so): none may
    # reach the program, not even through bwrap's init, which is PID 1 inside
    monkeypatch.setenv("ATLAS_METRICS_TOKEN", METRICS_TOKEN)
    code = "import os\nprint(sorted(os.environ))\nfor p in ('/proc/1/environ', '/proc/self/environ'):\n" \
           "    print(open(p, 'rb').read())\n"
    out = attack(sandbox, code)
    assert out["success"], out
    assert "ATLAS" not in out["stdout"] and METRICS_TOKEN not in out["stdout"]
    assert sandbox.settings.redis_password is not None
    assert sandbox.settings.redis_password.get_secret_value() not in out["stdout"]


def test_host_files_are_not_there(sandbox: Sandbox) -> None:
    secret_file = Path(__file__).resolve()
    code = ("import os\nfor p in ['/etc/shadow', '/etc/passwd', '/root', '/home', "
            f"{str(secret_file)!r}, '/proc/{os.getpid()}/environ', '/var/run', '/run']:\n"
            "    print(p, os.path.exists(p))\n")
    out = attack(sandbox, code)
    assert out["success"], out
    assert "True" not in out["stdout"], out["stdout"]


def test_cannot_write_outside_the_private_tmp(sandbox: Sandbox, tmp_path: Path) -> None:
    code = ("import os\nfor p in ['/usr/evil', '/sandbox/evil', '/evil', '/etc/evil']:\n    try:\n"
            "        open(p, 'w').write('x'); print('WROTE', p)\n    except OSError as exc:\n"
            "        print('refused', p, exc.errno)\nopen('/tmp/ok', 'w').write('x'); print('tmp ok')\n")
    out = attack(sandbox, code)
    assert "WROTE" not in out["stdout"] and "tmp ok" in out["stdout"], out
    assert not Path("/tmp/ok").exists() or Path("/tmp/ok").stat().st_mtime < 0


@pytest.mark.parametrize("name", ["../escape.py", "/etc/passwd", "a/../../x", "..", "a//b", ".hidden/../x"])
def test_file_names_cannot_escape(sandbox: Sandbox, name: str) -> None:
    response = sandbox.post("/execute", {"code": "print(1)", "files": {name: "x"}})
    assert response.status_code == 400
    assert "files" in response.json()["error"]["message"]


def test_symlinks_made_by_a_program_lead_nowhere(sandbox: Sandbox) -> None:
    code = ("import os\nos.symlink('/etc/shadow', '/tmp/link')\ntry:\n    print(open('/tmp/link').read())\n"
            "except OSError:\n    print('dangling')\n")
    assert attack(sandbox, code)["stdout"].strip() == "dangling"


def test_a_background_child_does_not_outlive_its_run(sandbox: Sandbox) -> None:
    code = ("import os, subprocess\nsubprocess.Popen(['sleep', '30'], start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '30'])\nprint('parent done')\n")
    out = attack(sandbox, code)
    assert out["success"] and out["stdout"].strip() == "parent done"
    # the autouse fixture checks that both sleeps are gone


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_exiting_early_does_not_fake_success(sandbox: Sandbox, exit_call: str) -> None:
    code = f"def add(a, b):\n    return a - b\n{exit_call}\n"
    out = attack(sandbox, code, test_code="assert add(1, 2) == 3\n")
    assert out["success"] is False
    judged = sandbox.judge(mode="assert", candidates=[{"code": code}], tests=[{"code": "assert add(1, 2) == 3"}])
    assert judged["candidates"][0]["verdict"] == "TestFailure"
    functional = sandbox.judge(mode="functional", func_name="add", candidates=[{"code": code}],
                               tests=[{"input": "1\n2", "output": "3"}])
    assert functional["candidates"][0]["passed"] is False


def test_output_flood_is_cut(sandbox: Sandbox) -> None:
    out = attack(sandbox, "while True:\n    print('x' * 1000)\n")
    assert out["error_type"] == "OutputLimit" and out["output_truncated"]
    assert len(out["stdout"]) <= 1024 * 1024


def test_ptrace_mount_and_new_namespaces_are_refused(sandbox: Sandbox) -> None:
    code = ("import ctypes, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print('ptrace', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())\n"
            "print('attach', libc.ptrace(16, 1, 0, 0))\n"
            "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
            "print('unshare', subprocess.run(['unshare', '-U', 'true'], capture_output=True).returncode)\n")
    out = attack(sandbox, code)
    lines = dict(line.split(" ", 1) for line in out["stdout"].splitlines())
    assert lines["ptrace"].startswith("-1 1")  # EPERM from the seccomp filter
    assert lines["attach"] == "-1" and lines["mount"] == "-1" and lines["unshare"] != "0"


def test_the_service_answers_at_normal_speed_after_the_battery(sandbox: Sandbox) -> None:
    times = [attack(sandbox, "print(1)")["execution_time_ms"] for _ in range(5)]
    attack(sandbox, "import os\nwhile True:\n    os.fork()\n")
    attack(sandbox, "while True:\n    print('x' * 1000)\n")
    after = [attack(sandbox, "print(1)")["execution_time_ms"] for _ in range(5)]
    assert statistics.median(after) < max(5 * statistics.median(times), 1000)


def test_a_stdin_program_cannot_read_expected_outputs_or_forge_the_judge(sandbox: Sandbox) -> None:
    snoop = ("import os, glob\nfound = [p for p in glob.glob('/sandbox/*') + glob.glob('/tmp/*')]\n"
             "for fd in glob.glob(f'/proc/{os.getppid()}/fd/*'):\n    try:\n"
             "        with open(fd, 'w') as f:\n"
             "            f.write('{\"i\": 0}\\n{\"i\": 1}\\n')\n    except OSError:\n        pass\n"
             "print('secret-answer' if any('spec' in p for p in found) else 'no')\n")
    forged = sandbox.judge(mode="stdin", candidates=[{"code": snoop}],
                           tests=[{"input": "", "output": "secret-answer"}, {"input": "", "output": "secret-answer"}])
    assert forged["candidates"][0]["verdict"] == "TestFailure", forged
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    killed = sandbox.judge(mode="stdin", candidates=[{"code": killer}], tests=[{"input": "", "output": "x"}])
    assert killed["candidates"][0]["verdict"] == "RuntimeError"  # the program's doing, not a sandbox error


def test_reading_the_harness_does_not_reveal_the_marker(sandbox: Sandbox) -> None:
    code = ("import glob, os, sys\nfor p in glob.glob('/sandbox/*'):\n"
            "    print(open(p).read())\nos._exit(0)\n")
    out = sandbox.judge(mode="assert", candidates=[{"code": code}], tests=[{"code": "assert False"}])
    assert out["candidates"][0]["verdict"] == "TestFailure"
    closed = "import sys\nsys.stdout.close()\ndef f(x):\n    return x\n"
    fine = sandbox.judge(mode="functional", func_name="f", candidates=[{"code": closed}],
                         tests=[{"input": "3", "output": "3"}])
    assert fine["candidates"][0]["verdict"] == "passed"  # a closed sys.stdout does not lose the result


def test_odd_outputs_are_plain_verdicts(sandbox: Sandbox) -> None:
    out = sandbox.judge(mode="stdin", candidates=[{"code": "print('sNaN')"},
                                                  {"code": "import sys\nprint('MemoryError', file=sys.stderr)\n"
                                                           "print(1)"}],
                        tests=[{"input": "", "output": "1"}])
    assert [c["verdict"] for c in out["candidates"]] == ["TestFailure", "passed"]
