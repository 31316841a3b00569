"""``atlas k8s`` and scripts/k8s/install.sh, offline: Secrets generated once and kept, split per service; the
rendered overlay carrying atlas.conf's keys; install.sh driving a recording stand-in for kubectl (no cluster can run
here), with every secret going to the cluster through a pipe and none to the disk."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atlas_cli.config import redis_password_key
from atlas_cli.k8s import generated, render, service_secrets
from atlas_core.settings import SettingsError
from tests.conftest import REPO
from tests.manifests.rendered import kustomize

ATLAS = [sys.executable, "-m", "atlas_cli"]


def _atlas(*args: str, conf: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")} | {"ATLAS_CONF": str(conf)}
    return subprocess.run([*ATLAS, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd=REPO)


def _as_kubectl_json(secret: dict[str, Any]) -> str:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "data": data})


def test_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    conf = tmp_path / "atlas.conf"
    conf.write_text("ATLAS_K8S_NAMESPACE=ml\n")
    first = _atlas("k8s", "secrets", conf=conf)
    assert first.returncode == 0, first.stderr
    items = {s["metadata"]["name"]: s for s in json.loads(first.stdout)["items"]}
    assert all(s["metadata"]["namespace"] == "ml" for s in items.values())
    master = items["atlas-generated"]
    again = _atlas("k8s", "secrets", "--existing", "-", conf=conf, stdin=_as_kubectl_json(master))
    kept = {s["metadata"]["name"]: s for s in json.loads(again.stdout)["items"]}
    assert kept == items  # the same values: a re-install changes no credential
    fresh = {s["metadata"]["name"]: s for s in json.loads(_atlas("k8s", "secrets", conf=conf).stdout)["items"]}
    assert fresh["atlas-generated"] != master  # and a first install makes new ones


def test_each_service_gets_its_own_secrets_and_redis_user() -> None:
    values = generated({})
    secrets = {s["metadata"]["name"]: s["stringData"] for s in service_secrets(values, {}, "atlas")}
    proxy = secrets["atlas-llm-proxy"]
    assert proxy["ATLAS_REDIS_USER"] == "llm-proxy"
    assert proxy["ATLAS_REDIS_PASSWORD"] == values[redis_password_key("llm-proxy")]
    assert "ATLAS_JWT_SECRET" not in proxy and "ATLAS_JWT_SECRET" in secrets["atlas-api-portal"]
    acl = secrets["atlas-redis"]["users.acl"]
    assert acl.startswith("user default on #") and "user sandbox reset on #" in acl
    assert values["ATLAS_REDIS_PASSWORD"] not in acl  # hashes only
    assert secrets["atlas-llama-server"]["api-keys"].strip() == values["ATLAS_LLAMA_API_KEY"]
    assert values["POSTGRES_PASSWORD"] in secrets["atlas-api-portal-db"]["ATLAS_DATABASE_URL"]
    external = {s["metadata"]["name"]: s["stringData"] for s in
                service_secrets(values, {"ATLAS_DATABASE_URL": "postgresql://u:p@db.example/atlas"}, "atlas")}
    assert external["atlas-api-portal-db"]["ATLAS_DATABASE_URL"] == "postgresql://u:p@db.example/atlas"


def test_render_carries_atlas_conf_into_the_overlay(tmp_path: Path) -> None:
    values = {"ATLAS_K8S_HOST": "atlas.example.org", "ATLAS_K8S_NAMESPACE": "ml", "ATLAS_K8S_IMAGE_TAG": "1.2.3",
              "ATLAS_K8S_IMAGE_REGISTRY": "registry.example.org/team", "ATLAS_RAG_K": "7",
              "ATLAS_LLAMA_URL": "http://127.0.0.1:8080", "ATLAS_JWT_SECRET": "not-for-a-configmap-0123456789"}
    out = tmp_path / "k3s"
    skipped = render("k3s-gpu", out, values)
    assert skipped == ["ATLAS_LLAMA_URL"]  # a local address would break the cluster's
    assert "not-for-a-configmap" not in "".join(p.read_text() for p in out.iterdir())
    docs = kustomize(out)
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "atlas-config")
    assert config["data"]["ATLAS_RAG_K"] == "7"
    assert config["data"]["ATLAS_LLAMA_URL"] == "http://llama-server:8080"
    assert config["data"]["ATLAS_PUBLIC_API_URL"] == "https://atlas.example.org/v1"
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "atlas.example.org"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in {"Namespace", "RuntimeClass"}} == {"ml"}
    proxy = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llm-proxy")
    assert proxy["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.org/team/atlas-llm-proxy:1.2.3"


def test_the_cluster_overlay_takes_its_redis_and_database_from_atlas_conf(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ATLAS_REDIS_URL"):
        render("cluster", tmp_path / "a", {})
    with pytest.raises(SettingsError, match="ATLAS_DATABASE_URL"):
        render("cluster", tmp_path / "b", {"ATLAS_REDIS_URL": "redis://redis.example.org:6379/0"})
    values = {"ATLAS_REDIS_URL": "rediss://redis.example.org:6380/0",
              "ATLAS_DATABASE_URL": "postgresql://atlas:pw-not-in-a-configmap@db.example.org/atlas"}
    assert render("cluster", tmp_path / "c", values) == []
    config = next(d for d in kustomize(tmp_path / "c") if d["metadata"]["name"] == "atlas-config")["data"]
    assert config["ATLAS_REDIS_URL"] == "rediss://redis.example.org:6380/0"
    assert "pw-not-in-a-configmap" not in json.dumps(config)
    scaled = next(d for d in kustomize(tmp_path / "c") if d["kind"] == "ScaledObject")
    assert {(t["metadata"]["address"], t["metadata"]["enableTLS"]) for t in scaled["spec"]["triggers"]} == \
        {("redis.example.org:6380", "true")}


def test_render_refuses_a_bad_key_or_overlay(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no overlay"):
        render("nope", tmp_path, {})
    conf = tmp_path / "atlas.conf"
    conf.write_text("ATLAS_K8S_HOTS=x\n")
    done = _atlas("k8s", "render", "cpu", "--out", str(tmp_path / "o"), conf=conf)
    assert done.returncode == 2 and "did you mean ATLAS_K8S_HOST" in done.stderr


FAKE_KUBECTL = r"""#!/usr/bin/env bash
# Records each call (argv, then stdin for apply) and answers like a cluster where nothing of ATLAS exists yet.
log=$FAKE_LOG
echo "ARGV $*" >> "$log"
case "$*" in
  "version --request-timeout=15s") exit 0 ;;
  *"get nodes"*) echo '{"nvidia.com/gpu":"1"}' ;;
  *"create namespace"*) echo "apiVersion: v1"; echo "kind: Namespace" ;;
  *"get secret"*) exit 1 ;;
  *"apply"*) echo "STDIN $(cat | head -c 200000 | tr '\n' ' ')" >> "$log" ;;
  *"create secret tls"*) exit 0 ;;
  *"get deployment,statefulset"*) echo deployment.apps/llm-proxy; echo statefulset.apps/llama-server ;;
  *"rollout status"*) exit 0 ;;
  *"exec deploy/api-portal"*) echo "admin s3cret-pass sk-llm-firstkey" ;;
esac
"""


def test_install_pipes_secrets_to_the_cluster_and_prints_the_first_credentials(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    conf = tmp_path / "atlas.conf"
    conf.write_text("ATLAS_K8S_HOST=gpu.example.org\n")
    log = tmp_path / "calls.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")} | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "ATLAS_CONF": str(conf), "FAKE_LOG": str(log),
        "ATLAS": str(Path(sys.executable).parent / "atlas"), "TMPDIR": str(tmp_path)}
    done = subprocess.run([shutil.which("bash") or "/bin/bash", str(REPO / "scripts/k8s/install.sh"), "k3s-gpu"],
                          capture_output=True,
                          text=True, env=env, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text()
    assert "apply --server-side --force-conflicts --field-manager=atlas-install -f -" in calls
    assert '"kind": "List"' in calls and "atlas-generated" in calls  # the Secrets went through the pipe
    assert "create secret tls atlas-tls" in calls and "apply -k" in calls
    assert calls.index("--server-side") < calls.index("apply -k")  # Secrets before the workloads need them
    assert "rollout status deployment.apps/llm-proxy" in calls
    assert "password s3cret-pass" in done.stdout and "sk-llm-firstkey" in done.stdout
    # Nothing secret is left on the disk: the work directory is gone, the key of the certificate with it.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")] == []


def test_scripts_parse_and_uninstall_keeps_the_data() -> None:
    for script in sorted((REPO / "scripts" / "k8s").glob("*.sh")):
        done = subprocess.run([shutil.which("bash") or "/bin/bash", "-n", str(script)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, f"{script.name}: {done.stderr}"
    # uninstall.sh deletes what the overlay rendered except what carries atlas.dev/keep: the namespace, the volumes
    # declared there and the cluster-wide RuntimeClass must carry it, and nothing else may (or uninstall would leave
    # workloads behind).
    docs = kustomize(REPO / "manifests" / "overlays" / "k3s-gpu")
    kept = {f"{d['kind']}/{d['metadata']['name']}" for d in docs if "atlas.dev/keep" in d["metadata"].get("labels", {})}
    assert kept == {"Namespace/atlas", "PersistentVolumeClaim/api-portal-state", "PersistentVolumeClaim/atlas-lens",
                    "RuntimeClass/nvidia"}
