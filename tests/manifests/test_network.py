"""The network graph the rendered NetworkPolicies allow, computed as Kubernetes evaluates them (an edge needs the
destination's ingress and the source's egress to allow it), equals the intended one: the proxy the only entry from
outside, the sandbox reachable from rag-api and the task-workers only, with no egress at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.manifests.rendered import OVERLAYS, WORKLOADS, containers, of_kind, overlay, pod_spec

NAMESPACE = "atlas"
INTERNET = "internet"


@dataclass(frozen=True)
class Peer:
    name: str
    namespace: str
    labels: dict[str, str] = field(hash=False)
    ports: tuple[int, ...] = ()
    ours: bool = True  # our policies govern its traffic


# Who else is in a cluster: the ingress controllers, Prometheus, kube-dns, and the internet.
OUTSIDERS = [
    Peer("traefik", "kube-system", {"app.kubernetes.io/name": "traefik"}, ours=False),
    Peer("ingress-nginx", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, ours=False),
    Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, ours=False),
    Peer("keda-operator", "keda", {"app": "keda-operator"}, ours=False),
    Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (53,), ours=False),
    Peer(INTERNET, "", {}, (443, 5432, 6379), ours=False),
]


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if (operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values) \
                or (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], peer: Peer) -> bool:
    if "ipBlock" in rule_peer:  # only traffic leaving the cluster is matched by address here
        return peer.name == INTERNET
    if peer.name == INTERNET:
        return False
    if "namespaceSelector" in rule_peer:
        if not _selects(rule_peer["namespaceSelector"], {"kubernetes.io/metadata.name": peer.namespace}):
            return False
    elif peer.namespace != NAMESPACE:
        return False
    return _selects(rule_peer.get("podSelector"), peer.labels)


def _allows(policies: list[dict[str, Any]], direction: str, subject: Peer, other: Peer, port: int) -> bool:
    """Whether ``subject``'s policies let traffic to/from ``other`` on ``port`` (no policy selecting it: all)."""
    kind, key, side = ("Ingress", "ingress", "from") if direction == "ingress" else ("Egress", "egress", "to")
    selecting = [p for p in policies if kind in p["spec"].get("policyTypes", [])
                 and _selects(p["spec"]["podSelector"], subject.labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers_ok = side not in rule or any(_peer_matches(peer, other) for peer in rule[side])
            ports_ok = "ports" not in rule or any(p.get("port") == port for p in rule["ports"])
            if peers_ok and ports_ok:
                return True
    return False


def peers(docs: tuple[dict[str, Any], ...]) -> list[Peer]:
    found = []
    for workload in of_kind(docs, *WORKLOADS):
        ports = tuple(p["containerPort"] for _, c in containers(workload) for p in c.get("ports", []))
        labels = workload["spec"]["template"]["metadata"]["labels"]
        found.append(Peer(workload["metadata"]["name"], NAMESPACE, labels, ports))
        assert pod_spec(workload)  # a pod template, not a stray object
    return found + OUTSIDERS


def edges(name: str) -> set[tuple[str, str, int]]:
    docs = overlay(name)
    policies = of_kind(docs, "NetworkPolicy")
    everyone = peers(docs)
    allowed = set()
    for source in everyone:
        for target in everyone:
            for port in target.ports:
                if source is target:
                    continue
                egress_ok = not source.ours or _allows(policies, "egress", source, target, port)
                ingress_ok = not target.ours or _allows(policies, "ingress", target, source, port)
                if egress_ok and ingress_ok:
                    allowed.add((source.name, target.name, port))
    return allowed


ATLAS = {"llm-proxy", "api-portal", "rag-api", "task-worker", "dashboard"}
BASE_EDGES = {
    ("traefik", "llm-proxy", 8000),
    *((src, "api-portal", 3000) for src in ("llm-proxy", "dashboard")),
    *((src, "rag-api", 8001) for src in ("llm-proxy", "dashboard")),
    ("dashboard", "task-worker", 8030),
    ("dashboard", "llm-proxy", 8000),
    *((src, "sandbox", 8020) for src in ("rag-api", "task-worker")),
    *((src, "llama-server", 8080) for src in ("llm-proxy", "api-portal", "rag-api", "task-worker", "dashboard")),
    *((src, "embedding-server", 8081) for src in ("llm-proxy", "api-portal", "rag-api", "task-worker", "dashboard")),
    *((src, "redis", 6379) for src in ATLAS),
    *((src, "kube-dns", 53) for src in ATLAS | {"llama-server", "embedding-server", "redis"}),
    *((src, INTERNET, 443) for src in ("llama-server", "embedding-server")),
}
MONITORED = {"llm-proxy": 8000, "api-portal": 3000, "rag-api": 8001, "task-worker": 8030, "dashboard": 3001,
             "llama-server": 8080, "embedding-server": 8081}
EXPECTED = {
    "cpu": BASE_EDGES,
    "k3s-gpu": BASE_EDGES | {("api-portal", "postgres", 5432), ("postgres", "kube-dns", 53)}
    | {("keda-operator", "redis", 6379)} | {("prometheus", n, p) for n, p in MONITORED.items()},
    "cluster": (BASE_EDGES - {("traefik", "llm-proxy", 8000)} - {e for e in BASE_EDGES if "redis" in e[:2]})
    | {("ingress-nginx", "llm-proxy", 8000), ("api-portal", INTERNET, 5432)}
    | {(src, INTERNET, 6379) for src in ATLAS} | {("prometheus", n, p) for n, p in MONITORED.items()},
}


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_policies_allow_exactly_the_intended_edges(name: str) -> None:
    allowed = edges(name)
    # Outsiders among themselves, and outsiders calling out, are not ours to judge.
    ours = {e for e in allowed if not (e[0] in {p.name for p in OUTSIDERS} and e[1] in {p.name for p in OUTSIDERS})}
    assert ours - EXPECTED[name] == set(), "allowed but not intended"
    assert EXPECTED[name] - ours == set(), "intended but not allowed"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_sandbox_is_reachable_from_its_callers_only_and_reaches_nothing(name: str) -> None:
    allowed = edges(name)
    assert {src for src, dst, _ in allowed if dst == "sandbox"} == {"rag-api", "task-worker"}
    assert {dst for src, dst, _ in allowed if src == "sandbox"} == set()


def test_the_graph_check_sees_a_hole() -> None:
    """An extra allow-all policy shows up as edges the test refuses (the evaluation is not vacuous)."""
    docs = overlay("cpu")
    allow_all = {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}}
    policies = [*of_kind(docs, "NetworkPolicy"), allow_all]
    sandbox = next(p for p in peers(docs) if p.name == "sandbox")
    internet = next(p for p in OUTSIDERS if p.name == INTERNET)
    assert not _allows(of_kind(docs, "NetworkPolicy"), "egress", sandbox, internet, 443)
    assert _allows(policies, "egress", sandbox, internet, 443)
