"""The Projects section: PageIndex's metrics (``atlas_pageindex.service.Metrics``, as rag-api exports them), read by
the real collector from a target the test moves, drawn in their own section and in the Grafana JSON."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from atlas_dashboard import grafana
from atlas_dashboard.panels import PANELS
from atlas_pageindex.service import Metrics
from tests.conftest import RedisServer
from tests.dashboard.test_dashboard_api import collected_twice

PROJECTS = ("project-searches", "project-search-time", "project-files", "project-embedded", "project-summaries",
            "project-tree-calls", "project-errors")


def test_every_projects_panel_reads_a_family_pageindex_exports() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {family.name for family in registry.collect()}
    panels = [p for p in PANELS if p.section == "Projects"]
    assert [p.id for p in panels] == list(PROJECTS)
    for panel in panels:
        assert panel.families() <= exported, panel.id
        assert all("atlas_pageindex_" in expr for expr, _ in grafana.expressions(panel)), panel.id


def test_the_projects_panels_show_what_pageindex_counted(service_env: dict[str, str],
                                                         redis_server: RedisServer) -> None:
    """Searches by the mode that ran and whether they found code, their time per mode, files by sync outcome,
    the background's pieces embedded, summaries and failures, and tree searches' model calls: none before
    anything moved (the first collection is the baseline), then exactly what moved."""
    registries = CollectorRegistry(), CollectorRegistry()  # rag-api exports PageIndex's; the worker none
    rag = Metrics(registries[0])
    rag.searches.labels("bm25", "yes")  # a series at 0 before anything happens

    def change() -> None:
        rag.searches.labels("bm25", "yes").inc(2)
        rag.searches.labels("hybrid", "no").inc()
        for seconds in (0.02, 0.03):
            rag.seconds.labels("bm25").observe(seconds)
        rag.seconds.labels("hybrid").observe(0.4)
        rag.files.labels("indexed").inc(5)
        rag.files.labels("unchanged").inc(12)
        rag.files.labels("deleted").inc()
        rag.embedded.inc(40)
        rag.summaries.inc(3)
        rag.tree_calls.inc(4)
        rag.background_errors.labels("embed").inc()

    first, data = collected_twice(service_env, redis_server, registries, change)
    before = {p["id"]: p for p in first["panels"]}
    assert all(before[i]["summary"] == [] for i in PROJECTS)
    shown = {p["id"]: p for p in data["panels"]}
    assert {p["id"] for p in data["panels"] if p["section"] == "Projects"} == set(PROJECTS)

    searches = {r["name"]: r["total"] for r in shown["project-searches"]["summary"]}
    assert searches == {"bm25 yes": 2.0, "hybrid no": 1.0}
    assert all(r["per_s"] > 0 for r in shown["project-searches"]["summary"])
    assert {s["name"] for s in shown["project-searches"]["series"]} == {"bm25 yes", "hybrid no"}

    times = {r["name"]: r for r in shown["project-search-time"]["summary"]}
    assert {name: r["count"] for name, r in times.items()} == {"bm25": 2.0, "hybrid": 1.0}
    assert 0.01 < times["bm25"]["p50"] <= 0.05
    assert times["hybrid"]["p50"] == pytest.approx(0.375)  # Prometheus's interpolation in the (0.25, 0.5] bucket
    assert {s["name"] for s in shown["project-search-time"]["series"]} >= {"bm25 p50", "bm25 p95", "hybrid p95"}

    assert {r["name"]: r["total"] for r in shown["project-files"]["summary"]} == {
        "indexed": 5.0, "unchanged": 12.0, "deleted": 1.0}
    assert [r["total"] for r in shown["project-embedded"]["summary"]] == [40.0]
    assert [r["total"] for r in shown["project-summaries"]["summary"]] == [3.0]
    assert [r["total"] for r in shown["project-tree-calls"]["summary"]] == [4.0]
    assert {r["name"]: r["total"] for r in shown["project-errors"]["summary"]} == {"embed": 1.0}
