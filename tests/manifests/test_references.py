"""Nothing in the manifests points at nothing: every ATLAS_* key is a setting its reader has, every Secret and
ConfigMap a workload references is created by the overlay or by install.sh (``atlas k8s secrets``), and the
Grafana dashboard shipped is the one docs/grafana holds."""

from __future__ import annotations

from typing import Any

import pytest

from atlas_cli.config import ALL_SETTINGS, SERVICE_SETTINGS, ClusterSettings, known_keys
from atlas_cli.k8s import generated, service_secrets
from atlas_core.settings import iter_keys
from tests.conftest import REPO
from tests.manifests.rendered import OVERLAYS, WORKLOADS, containers, of_kind, overlay, pod_spec

INSTALL = REPO / "scripts" / "k8s" / "install.sh"


def installed_secrets() -> dict[str, dict[str, str]]:
    """What install.sh applies: the Secrets of `atlas k8s secrets`, and the TLS Secret it makes when missing."""
    made = {s["metadata"]["name"]: s["stringData"] for s in service_secrets(generated({}), {}, "atlas")}
    return made | {"atlas-tls": {"tls.crt": "", "tls.key": ""}}


def references(doc: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key or None) of every Secret and ConfigMap a workload or custom resource references."""
    found: list[tuple[str, str, str | None]] = []
    if doc["kind"] in WORKLOADS:
        for volume in pod_spec(doc).get("volumes", []):
            if "secret" in volume:
                secret = volume["secret"]
                found += [("Secret", secret["secretName"], i["key"]) for i in secret.get("items", [])]
                found.append(("Secret", secret["secretName"], None))
            if "configMap" in volume:
                found.append(("ConfigMap", volume["configMap"]["name"], None))
        for _, container in containers(doc):
            for source in container.get("envFrom", []):
                for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if field in source:
                        found.append((kind, source[field]["name"], None))
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    found.append(("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
    if doc["kind"] == "TriggerAuthentication":
        found += [("Secret", t["name"], t["key"]) for t in doc["spec"]["secretTargetRef"]]
    if doc["kind"] == "ServiceMonitor":
        for endpoint in doc["spec"]["endpoints"]:
            credentials = endpoint["authorization"]["credentials"]
            found.append(("Secret", credentials["name"], credentials["key"]))
    if doc["kind"] == "Ingress":
        found += [("Secret", tls["secretName"], None) for tls in doc["spec"].get("tls", [])]
    return found


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_referenced_secret_and_config_map_is_created(name: str) -> None:
    docs = overlay(name)
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    secrets = installed_secrets() | {d["metadata"]["name"]: d.get("stringData", {}) for d in of_kind(docs, "Secret")}
    missing = []
    for doc in docs:
        for kind, ref, key in references(doc):
            pool = secrets if kind == "Secret" else config_maps
            if ref not in pool or (key is not None and key not in pool[ref]):
                missing.append(f"{doc['kind']}/{doc['metadata']['name']} -> {kind} {ref}{'/' + key if key else ''}")
    assert not missing, "referenced but created by nothing:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_atlas_key_in_the_manifests_is_a_real_setting(name: str) -> None:
    known = known_keys()
    docs = overlay(name)
    keys = {k for cm in of_kind(docs, "ConfigMap") for k in cm.get("data", {}) if k.startswith("ATLAS_")}
    keys |= {e["name"] for w in of_kind(docs, *WORKLOADS) for _, c in containers(w) for e in c.get("env", [])
             if e["name"].startswith("ATLAS_")}
    assert keys, "no ATLAS_ key found: the test reads nothing"
    assert sorted(keys - known) == []


def test_each_service_secret_holds_only_keys_its_service_reads() -> None:
    secrets = installed_secrets()
    for service, cls in SERVICE_SETTINGS.items():
        if service == "embedding-server":
            continue
        reads = {key for key, _, _ in iter_keys(cls)}
        held = set(secrets[f"atlas-{service}"])
        assert held, service
        assert held <= reads, f"atlas-{service} holds keys {service} does not read: {sorted(held - reads)}"
    # The sandbox never holds the signing half of its capability key.
    assert "ATLAS_SANDBOX_SIGNING_KEY" not in secrets["atlas-sandbox"]
    assert "ATLAS_SANDBOX_VERIFY_KEY" in secrets["atlas-sandbox"]


def test_cluster_keys_are_settings_atlas_up_accepts() -> None:
    assert ClusterSettings in ALL_SETTINGS
    assert {"ATLAS_K8S_OVERLAY", "ATLAS_K8S_HOST", "ATLAS_K8S_NAMESPACE"} <= known_keys()


def test_the_shipped_grafana_dashboard_is_the_documented_one() -> None:
    shipped = REPO / "manifests" / "components" / "monitoring" / "atlas.json"
    documented = sorted((REPO / "docs" / "grafana").glob("*.json"))
    assert len(documented) == 1
    assert shipped.read_bytes() == documented[0].read_bytes(), "copy docs/grafana/*.json to the monitoring component"


def test_install_creates_the_tls_secret_it_is_credited_with() -> None:
    text = INSTALL.read_text()
    assert "create secret tls" in text and "ATLAS_K8S_TLS_SECRET" in text
