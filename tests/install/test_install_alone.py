"""Each distribution installs alone with atlas-core into a fresh venv and starts: what each Dockerfile relies on
(no Docker engine runs here, so this stands in for building the images). It installs the way the Dockerfiles do:
third-party packages from the distribution's lock (locks/, written by scripts/lock.py) with --require-hashes
--no-deps, which proves the lock's hashes right, then the local directories with --no-deps; `pip check` then proves
the lock complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.lock import LEFT_OUT, LOCK_DIR, LOCKS
from tests.conftest import REPO

pytestmark = pytest.mark.install

# directory -> (import to try, console script and its argument, what its output must contain)
NO_TOKEN = "ATLAS_METRICS_TOKEN is required"  # every service's first required credential
NO_KEY = "configuration error: ATLAS_LLAMA_API_KEY is required"
DISTRIBUTIONS = {
    "api-portal": ("atlas_portal.app", ["atlas-api-portal"], NO_TOKEN),
    "llm-proxy": ("atlas_proxy.app", ["atlas-llm-proxy"], NO_TOKEN),
    "rag-api": ("atlas_rag.app", ["atlas-rag-api"], NO_TOKEN),
    "sandbox": ("atlas_sandbox.app", ["atlas-sandbox"], NO_TOKEN),
    "task-worker": ("atlas_worker.app", ["atlas-task-worker"], NO_TOKEN),
    "dashboard": ("atlas_dashboard.app", ["atlas-dashboard"], NO_TOKEN),
    "llama-server": ("atlas_llama.embed", ["atlas-embed-server"], NO_KEY),
    "engine": ("atlas_engine.build", ["python", "-c", "import atlas_engine.engine; print('engine ok')"], "engine ok"),
    "benchmark": ("atlas_bench", ["atlas-bench", "--version"], "atlas-bench 0.1.0"),
    "lens": ("atlas_lens.live", ["python", "-c", "import atlas_lens.train; print('lens ok')"], "lens ok"),
    "router": ("atlas_router.router", ["python", "-c", "import atlas_router.build; print('router ok')"], "router ok"),
    # The grammars are compiled into their wheels: parsing works with nothing fetched.
    "pageindex": ("atlas_pageindex.service", ["python", "-c", "from atlas_pageindex.outline import parse; "
                  "print(len(parse('a.go', 'package a\\nfunc F() {}\\n').nodes), 'pageindex ok')"], "1 pageindex ok"),
}
# Their images install torch alone, from PyTorch's CPU index (LEFT_OUT): here from the index pip is configured
# with, at the version constraints.txt pins.
TORCH = {"rag-api", "task-worker", "benchmark", "lens"}
# Each directory's lock: the one whose image installs it last (llama-server: the embedding server's, with its
# `embed` extra; rag-api's and task-worker's list the engine library they run).
LOCK = {lock.installs[-1].partition("[")[0]: name for name, lock in LOCKS.items()}


@pytest.mark.parametrize("directory", sorted(DISTRIBUTIONS))
def test_distribution_installs_alone(directory: str, tmp_path: Path) -> None:
    module, command, expected = DISTRIBUTIONS[directory]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    lock = LOCK[directory]
    steps = [["--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(LOCK_DIR / f"{lock}.txt")],
             ["--no-deps", "--no-build-isolation", *(str(REPO / spec) for spec in LOCKS[lock].installs)]]
    if directory in TORCH:
        steps.insert(1, ["--no-deps", "-c", str(REPO / "constraints.txt"), "torch==2.13.0"])
    for args in steps:
        install = subprocess.run([*pip, "install", "--quiet", *args], capture_output=True, text=True, timeout=600)
        assert install.returncode == 0, install.stderr[-3000:]
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120)
    assert checked.stdout.strip(), checked.stderr
    broken = [line for line in checked.stdout.splitlines()
              if line != "No broken requirements found." and not any(f" requires {d}," in line for d in LEFT_OUT)]
    assert not broken, f"locks/{lock}.txt is incomplete: {broken}"
    imported = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert expected in ran.stdout + ran.stderr
