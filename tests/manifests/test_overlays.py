"""Every overlay renders, validates against the pinned Kubernetes version's schemas (offline), and passes the
platform's policy: probes, requests and limits, non-root, read-only root, dropped capabilities, images pinned."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes_validate import utils as kv

from tests.manifests.rendered import OVERLAYS, WORKLOADS, containers, of_kind, overlay, pod_spec

KUBERNETES = "1.34.0"  # the oldest release the manifests support (K3s stable at the time of writing)
FIRST_PARTY = re.compile(r"^ghcr\.io/atlas/atlas-[a-z-]+:\d+\.\d+\.\d+$")
PINNED = re.compile(r"^[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")
# Custom resources have no schema in kubernetes-validate: their required structure is checked by hand below.
CUSTOM = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
UNCONFINED_SECCOMP = {"sandbox"}  # bubblewrap's user namespaces (docs/sandbox.md, "Kubernetes")


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_object_validates_against_the_pinned_schemas(name: str) -> None:
    errors = []
    for doc in overlay(name):
        if doc["kind"] in CUSTOM:
            continue
        try:
            kv.validate(doc, KUBERNETES, strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", OVERLAYS)
def test_custom_resources_have_their_required_fields(name: str) -> None:
    docs = overlay(name)
    for scaled in of_kind(docs, "ScaledObject"):
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        target = scaled["spec"]["scaleTargetRef"]["name"]
        assert target in {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
        auths = {d["metadata"]["name"] for d in of_kind(docs, "TriggerAuthentication")}
        measured = set()
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "redis-streams"
            assert {"address", "stream", "consumerGroup"} <= set(trigger["metadata"])
            measures = {"pendingEntriesCount", "streamLength", "lagCount"} & set(trigger["metadata"])
            assert len(measures) == 1, "one measure per trigger: the scaler uses one"
            measured |= {(trigger["metadata"]["stream"], *measures)}
            assert trigger["authenticationRef"]["name"] in auths
        assert measured == {(f"atlas:tasks:{p}", m) for p in ("p0", "p1", "p2")
                            for m in ("pendingEntriesCount", "lagCount")}
    for monitor in of_kind(docs, "ServiceMonitor"):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        labels = monitor["spec"]["selector"]["matchLabels"]
        services = [s for s in of_kind(docs, "Service") if labels.items() <= s["metadata"].get("labels", {}).items()]
        assert services, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        ports = {p["name"] for p in services[0]["spec"]["ports"]}
        assert all(e["port"] in ports for e in monitor["spec"]["endpoints"])


def _policy_problems(workload: dict[str, Any]) -> list[str]:
    name = workload["metadata"]["name"]
    spec = pod_spec(workload)
    pod_security = spec.get("securityContext", {})
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("mounts a Kubernetes API token")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("shares a host namespace")
    if any("hostPath" in volume for volume in spec.get("volumes", [])):
        problems.append("mounts a host path")
    seccomp = pod_security.get("seccompProfile", {}).get("type")
    if seccomp != "RuntimeDefault" and not (name in UNCONFINED_SECCOMP and seccomp == "Unconfined"):
        problems.append(f"seccomp profile {seccomp}, not RuntimeDefault")
    for role, container in containers(workload):
        where = f"{role} container {container['name']}"
        security = container.get("securityContext", {})
        if not (security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) and
                security.get("runAsUser", pod_security.get("runAsUser", 0)) != 0):
            problems.append(f"{where} may run as root")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where} has a writable root file system")
        if security.get("allowPrivilegeEscalation") is not False or security.get("privileged"):
            problems.append(f"{where} may escalate privileges")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
            problems.append(f"{where} keeps capabilities")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                problems.append(f"{where} has no cpu and memory {kind}")
        if role == "main" and not ("livenessProbe" in container and "readinessProbe" in container):
            problems.append(f"{where} lacks a liveness or readiness probe")
        image = container["image"]
        if image.endswith(":latest") or not (FIRST_PARTY.match(image) or PINNED.match(image)):
            problems.append(f"{where} image {image} is neither ATLAS's by version nor a third party's by digest")
    return problems


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_workload_meets_the_policy(name: str) -> None:
    workloads = of_kind(overlay(name), *WORKLOADS)
    assert len(workloads) >= 8
    problems = [f"{w['kind']}/{w['metadata']['name']}: {p}" for w in workloads for p in _policy_problems(w)]
    assert not problems, "\n".join(problems)


def test_the_policy_check_catches_what_it_forbids() -> None:
    """The check above fails on a workload that breaks each rule (it is not vacuous)."""
    good = next(w for w in overlay("cpu") if w["kind"] == "Deployment" and w["metadata"]["name"] == "llm-proxy")
    assert _policy_problems(good) == []
    bad = {**good, "spec": {**good["spec"], "template": {"spec": {
        "containers": [{"name": "x", "image": "redis:latest",
                        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}}
    found = " ".join(_policy_problems(bad))
    for expected in ("API token", "host path", "seccomp", "root", "writable root", "escalate", "capabilities",
                     "cpu and memory", "probe", "neither"):
        assert expected in found


def test_overlays_differ_where_they_should() -> None:
    def images(name: str) -> set[str]:
        return {c["image"] for w in of_kind(overlay(name), *WORKLOADS) for _, c in containers(w)}

    def kinds(name: str) -> set[str]:
        return {f"{d['kind']}/{d['metadata']['name']}" for d in overlay(name)}

    cuda = "ghcr.io/ggml-org/llama.cpp@sha256:45047ae940975851c3b195997c91f6bb4add4b941880d94287e5f21ff5a6369a"
    assert cuda in images("k3s-gpu") and cuda in images("cluster") and cuda not in images("cpu")
    assert "StatefulSet/postgres" in kinds("k3s-gpu") and "StatefulSet/redis" in kinds("k3s-gpu")
    assert "StatefulSet/redis" not in kinds("cluster") and "StatefulSet/postgres" not in kinds("cluster")
    assert "PodDisruptionBudget/rag-api" in kinds("cluster") and "ScaledObject/task-worker" in kinds("cluster")
    assert not any(k.startswith(("ScaledObject", "ServiceMonitor", "PodDisruptionBudget")) for k in kinds("cpu"))
    replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in of_kind(overlay("cluster"), "Deployment")}
    assert replicas["sandbox"] == replicas["api-portal"] == 2
    floors = {d["metadata"]["name"]: d["spec"]["minReplicas"]
              for d in of_kind(overlay("cluster"), "HorizontalPodAutoscaler")}
    assert floors == {"llm-proxy": 2, "rag-api": 2}
    # Each process may keep every slot of every llama-server A replica busy, no more.
    for name in ("k3s-gpu", "cluster"):
        docs = overlay(name)
        server = next(w for w in of_kind(docs, "StatefulSet") if w["metadata"]["name"] == "llama-server")
        slots = int(_flags(next(c for r, c in containers(server) if r == "main")["args"])["--parallel"] or 0)
        config = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "atlas-config")["data"]
        assert int(config["ATLAS_RAG_LLM_PARALLEL"]) == slots * server["spec"]["replicas"], name
    # The autoscaled Deployments carry no replica count an apply would reset under the autoscaler.
    assert replicas["llm-proxy"] is None and replicas["rag-api"] is None and replicas["task-worker"] is None


def _flags(args: list[str]) -> dict[str, str | None]:
    """llama-server's arguments as {flag: value or None}: a flag and its value are separate arguments."""
    flags: dict[str, str | None] = {}
    last = ""
    for arg in args:
        assert "=" not in arg or not arg.startswith("--"), f"{arg}: llama.cpp refuses --flag=value"
        if arg.startswith("--"):
            flags[arg] = None
            last = arg
        else:
            flags[last] = arg
    return flags


def test_the_gpu_server_runs_the_main_model_with_its_draft_on_the_gpu() -> None:
    server = next(w for w in of_kind(overlay("k3s-gpu"), "StatefulSet") if w["metadata"]["name"] == "llama-server")
    main = next(c for role, c in containers(server) if role == "main")
    flags = _flags(main["args"])
    assert flags["--model"] == "/models/Qwen3-14B-Q4_K_M.gguf"
    assert flags["--model-draft"] == "/models/Qwen3-0.6B-Q8_0.gguf"
    assert flags["--n-gpu-layers"] == "all" and flags["--api-key-file"] == "/run/atlas/llama/api-keys"
    assert int(flags["--ctx-size"] or 0) // int(flags["--parallel"] or 1) == 8192
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec(server)["runtimeClassName"] == "nvidia"
    embed = next(w for w in of_kind(overlay("k3s-gpu"), "StatefulSet") if w["metadata"]["name"] == "embedding-server")
    embed_flags = _flags(next(c for r, c in containers(embed) if r == "main")["args"])
    assert embed_flags["--pooling"] == "mean" and "--embeddings" in embed_flags
    # Every model file a server loads is one its init step fetches and checks.
    for name in OVERLAYS:
        for workload in of_kind(overlay(name), "StatefulSet"):
            if workload["metadata"]["name"] not in {"llama-server", "embedding-server"}:
                continue
            args = next(c for r, c in containers(workload) if r == "main").get("args", [])
            lists = [d["data"]["models.txt"] for d in of_kind(overlay(name), "ConfigMap")
                     if d["metadata"]["name"] in {v["configMap"]["name"] for v in pod_spec(workload)["volumes"]
                                                  if "configMap" in v}
                     and "models.txt" in d.get("data", {})]
            for flag in ("--model", "--model-draft"):
                if flag in _flags(args):
                    file = (_flags(args)[flag] or "").removeprefix("/models/")
                    assert any(line.startswith(file + " ") for text in lists for line in text.splitlines()), file


@pytest.mark.parametrize("name", OVERLAYS)
def test_pod_security_admission_admits_the_sandbox(name: str) -> None:
    """Pod Security's baseline and restricted levels refuse Unconfined seccomp and AppArmor profiles, which the
    sandbox needs: a namespace enforcing either would never start it."""
    docs = overlay(name)
    labels = of_kind(docs, "Namespace")[0]["metadata"]["labels"]
    sandbox = next(w for w in of_kind(docs, "Deployment") if w["metadata"]["name"] == "sandbox")
    unconfined = pod_spec(sandbox)["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    assert unconfined
    assert labels.get("pod-security.kubernetes.io/enforce", "privileged") == "privileged"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
