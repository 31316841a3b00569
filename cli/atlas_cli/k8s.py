"""``atlas k8s``: what scripts/k8s/*.sh need from Python, with the same rules as ``atlas up`` (docs/kubernetes.md).

    atlas k8s get KEY                          one setting's value (atlas.conf, environment, default)
    atlas k8s secrets [--existing FILE|-]      every Secret the manifests reference, as a JSON List on stdout:
                                               the values in the Secret atlas-generated (kubectl get -o json)
                                               are kept, the missing ones generated; nothing touches the disk
    atlas k8s render OVERLAY --out DIR         a kustomization over manifests/overlays/OVERLAY with atlas.conf's
                                               keys, images and ingress host filled in
    atlas k8s redis-acl [--existing FILE|-]    the ACL lines of the per-service Redis users, for an external Redis
    atlas k8s smoke --url URL --api-key KEY    a chat, a verified solve and a task through the ingress

Secrets are split per service as ``atlas up`` splits the environment: a service's Secret holds only the
secrets that service's settings read, plus its own Redis user.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.config import (
    SERVICE_SETTINGS,
    ClusterSettings,
    RunnerSettings,
    gather,
    redis_password_key,
    secret_keys,
)
from atlas_cli.secrets import fill
from atlas_core.capability import public_key_text
from atlas_core.redis_acl import RULES, acl_lines
from atlas_core.settings import (
    SettingsError,
    is_secret,
    iter_keys,
    load_settings,
    read_conf,
)

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
MASTER = "atlas-generated"  # the Secret that keeps every generated value between installs
# Keys that hold a credential though their type is a plain string.
SECRET_STRINGS = {"ATLAS_DATABASE_URL"}
# Services that are not ATLAS processes in the cluster (llama.cpp serves B there).
NOT_DEPLOYED = {"embedding-server"}
IMAGES = ["api-portal", "llm-proxy", "rag-api", "sandbox", "task-worker", "dashboard"]


# Keys the manifests set for the cluster (addresses, hosts, ports, paths): a value from atlas.conf, written for
# `atlas up` on one machine, would break them, so render leaves them out and says so.
def cluster_managed() -> set[str]:
    base = read_conf(MANIFESTS / "base" / "config" / "atlas.env")
    ports = {key for cls in SERVICE_SETTINGS.values() for key, _, _ in iter_keys(cls) if key.endswith("_PORT")}
    runner = {key for key, _, _ in iter_keys(RunnerSettings)}
    return set(base) | ports | runner | {"ATLAS_REDIS_PASSWORD", "ATLAS_REDIS_USER"}


def secret_key_names() -> set[str]:
    keys = {key for cls in SERVICE_SETTINGS.values() for key, _, info in iter_keys(cls) if is_secret(info)}
    return keys | SECRET_STRINGS


def cluster_settings(values: Mapping[str, str]) -> ClusterSettings:
    return load_settings(ClusterSettings, environ=values, conf_file=None, read_conf_file=False)


def generated(existing: Mapping[str, str]) -> dict[str, str]:
    """Every generated value: those already in the cluster kept, the missing ones made as `atlas up` makes them."""
    keys = [*secret_keys(), "POSTGRES_PASSWORD"]
    return {key: value for key, value in fill(existing, keys).items() if key in keys}


def _secret(name: str, data: Mapping[str, str], namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "atlas"}},
            "stringData": dict(data)}


def redis_acl(values: Mapping[str, str]) -> str:
    """The Redis users file: the operator's default user with its password, then one user per service."""
    admin = hashlib.sha256(values["ATLAS_REDIS_PASSWORD"].encode()).hexdigest()
    users = acl_lines({name: values[redis_password_key(name)] for name in RULES})
    return "\n".join([f"user default on #{admin} ~* &* +@all", *users]) + "\n"


def service_secrets(values: Mapping[str, str], conf: Mapping[str, str], namespace: str) -> list[dict[str, Any]]:
    """Every Secret the manifests reference, each holding only what its reader needs."""
    merged = {**values, **{k: v for k, v in conf.items() if k in secret_key_names()}}
    merged["ATLAS_SANDBOX_VERIFY_KEY"] = public_key_text(merged["ATLAS_SANDBOX_SIGNING_KEY"])
    out = []
    for service, cls in SERVICE_SETTINGS.items():
        if service in NOT_DEPLOYED:
            continue
        data = {key: merged[key] for key, _, info in iter_keys(cls)
                if (is_secret(info) or key == "ATLAS_SANDBOX_VERIFY_KEY") and key in merged
                and key not in SECRET_STRINGS}
        if service in RULES and service != "sandbox":  # its own Redis user (the sandbox uses none in a cluster)
            data |= {"ATLAS_REDIS_USER": service, "ATLAS_REDIS_PASSWORD": merged[redis_password_key(service)]}
        out.append(_secret(f"atlas-{service}", data, namespace))
    database = conf.get("ATLAS_DATABASE_URL") or \
        f"postgresql://atlas:{merged['POSTGRES_PASSWORD']}@postgres:5432/atlas"
    out += [
        _secret("atlas-api-portal-db", {"ATLAS_DATABASE_URL": database}, namespace),
        _secret("atlas-postgres", {"password": merged["POSTGRES_PASSWORD"]}, namespace),
        # api-keys: the file llama-server reads (one key a line); token: the same key alone, for Prometheus.
        _secret("atlas-llama-server", {"api-keys": merged["ATLAS_LLAMA_API_KEY"] + "\n",
                                       "token": merged["ATLAS_LLAMA_API_KEY"]}, namespace),
        _secret("atlas-redis", {"users.acl": redis_acl(merged)}, namespace),
        _secret("atlas-keda", {"username": "keda", "password": merged[redis_password_key("keda")]}, namespace),
        _secret("atlas-metrics", {"token": merged["ATLAS_METRICS_TOKEN"]}, namespace),
        _secret(MASTER, values, namespace),
    ]
    return out


def read_existing(source: str | None) -> dict[str, str]:
    """The data of the Secret atlas-generated as `kubectl get secret -o json` prints it (empty: a first install)."""
    if source is None:
        return {}
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        data = json.loads(text).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    except (ValueError, AttributeError) as exc:
        raise SettingsError(f"--existing is not a Secret as `kubectl get secret -o json` prints it ({exc})") from None


def _external(values: Mapping[str, str], overlay: str) -> None:
    """An overlay with the external-data component has no Redis or PostgreSQL of its own: atlas.conf must name them
    (the portal's URL holds a password, so it goes into its Secret; Redis's users are the services' own)."""
    for key in ("ATLAS_REDIS_URL", "ATLAS_DATABASE_URL"):
        host = httpx.URL(values.get(key) or "x://").host
        if not host or host in {"127.0.0.1", "localhost", "::1"}:
            raise SettingsError(f"overlay {overlay} uses an external Redis and PostgreSQL: set {key} in atlas.conf "
                                "to an address the cluster reaches (docs/kubernetes.md)")


def _keda_address(redis_url: str) -> dict[str, Any]:
    """KEDA's triggers pointed at the external Redis (TLS when its URL is rediss://)."""
    url = httpx.URL(redis_url)
    triggers = (MANIFESTS / "components" / "autoscaling" / "keda.yaml").read_text().count("type: redis-streams")
    ops: list[dict[str, str]] = []
    for i in range(triggers):
        ops.append({"op": "replace", "path": f"/spec/triggers/{i}/metadata/address",
                    "value": f"{url.host}:{url.port or 6379}"})
        if url.scheme == "rediss":
            ops.append({"op": "add", "path": f"/spec/triggers/{i}/metadata/enableTLS", "value": "true"})
    return {"target": {"kind": "ScaledObject", "name": "task-worker"}, "patch": json.dumps(ops)}


def render(overlay: str, out: Path, values: Mapping[str, str]) -> list[str]:
    """Write OUT/kustomization.yaml (+ atlas.env) over the overlay; returns the atlas.conf keys left out."""
    source = MANIFESTS / "overlays" / overlay
    if not (source / "kustomization.yaml").is_file():
        known = ", ".join(sorted(p.name for p in (MANIFESTS / "overlays").iterdir()))
        raise SettingsError(f"no overlay {overlay!r} in {MANIFESTS / 'overlays'}; choose one of: {known}")
    cluster = cluster_settings(values)
    managed, hidden = cluster_managed(), secret_key_names()
    external = "components/external-data" in (source / "kustomization.yaml").read_text()
    if external:
        _external(values, overlay)
        managed.discard("ATLAS_REDIS_URL")
    cluster_keys = {key for key, _, _ in iter_keys(ClusterSettings)}
    config = {k: v for k, v in values.items()
              if k not in managed and k not in hidden and k not in cluster_keys and "\n" not in v}
    config["ATLAS_PUBLIC_API_URL"] = f"https://{cluster.k8s_host}/v1"
    skipped = sorted(k for k in values if k in managed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "atlas.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(config.items())), encoding="utf-8")
    registry = cluster.k8s_image_registry.rstrip("/")
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(source, out)],
        "configMapGenerator": [{"name": "atlas-config", "behavior": "merge", "envs": ["atlas.env"]}],
        "generatorOptions": {"disableNameSuffixHash": True},
        "images": [{"name": f"ghcr.io/atlas/atlas-{name}", "newName": f"{registry}/atlas-{name}",
                    "newTag": cluster.k8s_image_tag} for name in IMAGES],
        "patches": [{"target": {"kind": "Ingress", "name": "atlas"}, "patch": json.dumps([
            {"op": "replace", "path": "/spec/rules/0/host", "value": cluster.k8s_host},
            {"op": "replace", "path": "/spec/tls/0/hosts/0", "value": cluster.k8s_host},
            {"op": "replace", "path": "/spec/tls/0/secretName", "value": cluster.k8s_tls_secret}])}],
    }
    if external:
        doc["patches"].append(_keda_address(values["ATLAS_REDIS_URL"]))
    if cluster.k8s_namespace != "atlas":
        doc["namespace"] = cluster.k8s_namespace
    (out / "kustomization.yaml").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return skipped


def smoke(url: str, api_key: str, *, timeout_s: float = 600.0) -> list[str]:
    """A raw chat, a verified solve and a task through ``url`` (…/v1) with ``api_key``; raises SettingsError
    naming the first step that failed. A self-signed certificate is trusted through SSL_CERT_FILE (verify.sh
    points it at the ingress's own certificate)."""
    url = url.rstrip("/")
    done = []
    with httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s) as http:
        def call(step: str, method: str, path: str, **kwargs: Any) -> Any:
            try:
                response = http.request(method, f"{url}{path}", **kwargs)
            except httpx.HTTPError as exc:
                raise SettingsError(f"{step}: {url}{path} did not answer ({type(exc).__name__})") from None
            if response.status_code >= 300:
                raise SettingsError(f"{step}: HTTP {response.status_code}: {response.text[:300]}")
            return response.json()

        models = [m["id"] for m in call("models", "GET", "/models")["data"]]
        raw = next((m for m in models if not m.startswith("atlas")), None)
        if raw is None:
            raise SettingsError(f"models: no raw model among {models}")
        chat = call("chat", "POST", "/chat/completions", json={
            "model": raw, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]})
        done.append(f"chat ({raw}): {chat['usage']['completion_tokens']} tokens")
        text = "Write a Python function add(a, b) that returns a + b."
        tests = [{"assert": "assert add(2, 3) == 5"}, {"assert": "assert add(-1, 1) == 0"}]
        solved = call("solve", "POST", "/solve", json={"problem": text, "tests": tests})
        done.append(f"solve {solved['id']}: {solved['status']} ({solved['summary'][:120]})")
        task = call("task", "POST", "/tasks", json={"prompt": text, "tests": tests, "max_attempts": 1})
        deadline = time.monotonic() + timeout_s
        while True:
            state = call("task", "GET", f"/tasks/{task['task_id']}")
            if state["status"] in ("succeeded", "failed", "cancelled", "dead"):
                break
            if time.monotonic() > deadline:
                raise SettingsError(f"task: {task['task_id']} still {state['status']} after {timeout_s:g}s")
            time.sleep(2.0)
        done.append(f"task {task['task_id']}: {state['status']}")
    return done


def run(args: argparse.Namespace, _state_dir: Path) -> int:
    if args.k8s_command == "smoke":
        key = args.api_key or os.environ.get("ATLAS_API_KEY")
        if not key:
            raise SettingsError("give an sk-llm- key: --api-key KEY or ATLAS_API_KEY")
        for line in smoke(args.url, key):
            print(line)
        return 0
    values = gather({}, args.conf)  # atlas.conf under the environment, unknown keys refused, as `atlas up`
    if args.k8s_command == "get":
        settings = cluster_settings(values)
        field = {key: name for key, name, _ in iter_keys(ClusterSettings)}.get(args.key)
        if field is None:
            raise SettingsError(f"{args.key} is not a scripts/k8s key; see `atlas k8s --help`")
        print(getattr(settings, field))
    elif args.k8s_command == "secrets":
        namespace = cluster_settings(values).k8s_namespace
        doc = {"apiVersion": "v1", "kind": "List",
               "items": service_secrets(generated(read_existing(args.existing)), values, namespace)}
        print(json.dumps(doc))
    elif args.k8s_command == "redis-acl":
        print(redis_acl(generated(read_existing(args.existing))), end="")
    else:
        for key in render(args.overlay, Path(args.out), values):
            print(f"note: {key} from atlas.conf is left out: the manifests set it for the cluster", file=sys.stderr)
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    k8s: argparse.ArgumentParser = sub.add_parser(
        "k8s", parents=[common], help="what scripts/k8s needs: settings, Secrets, the rendered overlay, a smoke test")
    actions = k8s.add_subparsers(dest="k8s_command", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="one ATLAS_K8S_* setting's value")
    get.add_argument("key")
    for name, text in (("secrets", "every Secret the manifests reference, as JSON, on stdout"),
                       ("redis-acl", "the Redis users file, for an external Redis")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--existing", help="the Secret atlas-generated as JSON (- for stdin): its values are kept")
    render_parser = actions.add_parser("render", help="a kustomization over an overlay with atlas.conf filled in")
    render_parser.add_argument("overlay")
    render_parser.add_argument("--out", required=True, help="directory to write (created)")
    smoke_parser = actions.add_parser("smoke", help="a chat, a verified solve and a task through the ingress")
    smoke_parser.add_argument("--url", required=True, help="the API's base URL, https://HOST/v1")
    smoke_parser.add_argument("--api-key", help="an sk-llm- key (default: ATLAS_API_KEY)")
    return k8s
