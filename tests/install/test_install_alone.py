"""Each distribution installs alone with atlas-core into a fresh venv and starts: what each Dockerfile relies on
(no Docker engine runs here, so this stands in for building the images)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.install

# directory -> (import to try, console script and its argument, what its output must contain)
NO_TOKEN = "configuration error: ATLAS_SERVICE_TOKEN is required"
NO_KEY = "configuration error: ATLAS_LLAMA_API_KEY is required"
DISTRIBUTIONS = {
    "api-portal": ("atlas_portal.app", ["atlas-api-portal"], NO_TOKEN),
    "llm-proxy": ("atlas_proxy.app", ["atlas-llm-proxy"], NO_TOKEN),
    "rag-api": ("atlas_rag.app", ["atlas-rag-api"], NO_TOKEN),
    "sandbox": ("atlas_sandbox.app", ["atlas-sandbox"], NO_TOKEN),
    "task-worker": ("atlas_worker.app", ["atlas-task-worker"], NO_TOKEN),
    "dashboard": ("atlas_dashboard.app", ["atlas-dashboard"], NO_TOKEN),
    "llama-server": ("atlas_llama.embed", ["atlas-embed-server"], NO_KEY),
    "benchmark": ("atlas_bench", ["atlas-bench", "--version"], "atlas-bench 0.1.0"),
}
# Sibling distributions one needs (pip cannot resolve them from an index: they are local directories).
NEEDS = {"task-worker": ["rag-api"]}  # the worker runs rag-api's engine


@pytest.mark.parametrize("directory", sorted(DISTRIBUTIONS))
def test_distribution_installs_alone(directory: str, tmp_path: Path) -> None:
    module, command, expected = DISTRIBUTIONS[directory]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python), "install", "--quiet",
         "-c", str(REPO / "constraints.txt"), str(REPO / "core"),
         *(str(REPO / d) for d in NEEDS.get(directory, [])), str(REPO / directory)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    imported = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert expected in ran.stdout + ran.stderr
