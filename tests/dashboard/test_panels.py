"""The dashboard's arithmetic: Prometheus text to flat samples, increases across scrapes and restarts, histogram
quantiles as Prometheus computes them, panels over steps, and the Grafana JSON built from the same panels."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from atlas_dashboard import grafana, series
from atlas_dashboard.panels import PANELS, Panel, Query, evaluate, families, index, quantile, total
from tests.conftest import REPO


def metrics_text() -> str:
    registry = CollectorRegistry()
    requests = Counter("atlas_proxy_requests_total", "", ["model", "route", "code"], registry=registry)
    requests.labels("m", "raw", "2xx").inc(3)
    Gauge("atlas_queue_depth", "", ["priority"], registry=registry).labels("p1").set(4)
    latency = Histogram("atlas_proxy_ttft_seconds", "", ["model", "route"], registry=registry, buckets=(0.1, 0.5))
    for seconds in (0.05, 0.2, 0.3):
        latency.labels("m", "raw").observe(seconds)
    Counter("something_else_total", "", registry=registry).inc()
    return generate_latest(registry).decode()


def test_parse_keeps_only_the_families_panels_read_and_skips_created_samples() -> None:
    scrape = series.parse(metrics_text(), families(), limit=1000)
    assert scrape.cumulative['atlas_proxy_requests_total{code="2xx",model="m",route="raw"}'] == 3
    assert scrape.gauges['atlas_queue_depth{priority="p1"}'] == 4
    assert scrape.cumulative['atlas_proxy_ttft_seconds_bucket{le="0.5",model="m",route="raw"}'] == 3
    assert not any("something_else" in k or k.endswith("_created") for k in scrape.cumulative)
    assert len(series.parse(metrics_text(), families(), limit=3).cumulative) + 0 <= 3


def test_parse_reads_what_prometheus_clients_parser_reads() -> None:
    registry = CollectorRegistry()
    counter = Counter("atlas_proxy_requests_total", "", ["model", "route", "code"], registry=registry)
    counter.labels('odd "model"\\x\nnew line', "raw", "2xx").inc(2)
    latency = Histogram("atlas_proxy_e2e_seconds", "", ["model", "route"], registry=registry)
    latency.labels("m", "atlas").observe(1.5)
    text = metrics_text() + generate_latest(registry).decode()
    reference = {series.key_of(s.name, s.labels): s.value for f in text_string_to_metric_families(text)
                 if f.name in families() for s in f.samples if not s.name.endswith("_created")}
    scrape = series.parse(text, families(), limit=10_000)
    assert {**scrape.cumulative, **scrape.gauges} == reference
    assert series.key_of("atlas_proxy_requests_total", {"code": "2xx", "model": 'odd "model"\\x\nnew line',
                                                        "route": "raw"}) in scrape.cumulative


def test_keys_round_trip_whatever_the_label_values() -> None:
    for labels in ({"model": "qwen3:14b", "route": "raw"}, {"model": 'a",le="1', "x": 'back\\slash"\n'}):
        assert series.parse_key(series.key_of("x_total", labels)) == ("x_total", labels)


def test_increase_needs_a_baseline_and_survives_a_restart() -> None:
    assert series.increase({"a": 5.0}, None) == {}
    assert series.increase({"a": 5.0, "b": 1.0}, {"a": 2.0}) == {"a": 3.0, "b": 1.0}
    assert series.increase({"a": 1.0}, {"a": 7.0}) == {"a": 1.0}  # restarted: counted from zero again
    assert series.combine([{"a": 1.0}, {"a": 2.0}], [{"g": 3.0}, {"g": 1.0}]) == ({"a": 3.0}, {"g": 3.0})


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.1: 5.0, 0.5: 10.0, float("inf"): 10.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.95, buckets) == pytest.approx(0.46)
    assert quantile(0.99, {0.1: 1.0, float("inf"): 2.0}) == pytest.approx(0.1)  # in +Inf: the highest bound
    assert quantile(0.5, {0.1: 1.0, 1.0: 2.0}) is None  # no +Inf bucket: a histogram cut short
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def run(panel: Panel, steps: list[dict[str, float]], spans: list[float]) -> dict[str, Any]:
    parsed = {k: series.parse_key(k) for step in steps for k in step}
    return evaluate(panel, [index(s, parsed) for s in steps], index(total(steps), parsed), spans)


def test_quantiles_of_sparse_increases_match_prometheus() -> None:
    """One 100 s request: only buckets from 120 s up grew, yet the bound below them must be kept (p50 = 90 s,
    not 60 s); a request beyond every bound reads as the highest bound."""
    registry = CollectorRegistry()
    e2e = Histogram("atlas_proxy_e2e_seconds", "", ["model", "route"], registry=registry,
                    buckets=(0.1, 1, 10, 60, 120, 600))
    e2e.labels("m", "raw").observe(0.05)
    before = series.parse(generate_latest(registry).decode(), families(), 1000).cumulative
    e2e.labels("m", "raw").observe(100)
    grown = series.increase(series.parse(generate_latest(registry).decode(), families(), 1000).cumulative, before)
    panel = next(p for p in PANELS if p.id == "e2e")
    assert run(panel, [grown], [60.0])["summary"][0]["p50"] == pytest.approx(90.0)
    before = series.parse(generate_latest(registry).decode(), families(), 1000).cumulative
    e2e.labels("m", "raw").observe(5000)
    grown = series.increase(series.parse(generate_latest(registry).decode(), families(), 1000).cumulative, before)
    assert run(panel, [grown], [60.0])["summary"][0]["p99"] == pytest.approx(600.0)


def test_a_rate_panel_per_step_and_over_the_window() -> None:
    panel = Panel("r", "Requests", "rate", "T", Query("atlas_proxy_requests", by=("model",)))
    steps = [{'atlas_proxy_requests_total{code="2xx",model="a"}': 60.0},
             {'atlas_proxy_requests_total{code="2xx",model="a"}': 6.0,
              'atlas_proxy_requests_total{code="5xx",model="b"}': 3.0}]
    out = run(panel, steps, [60.0, 30.0])
    assert out["series"] == [{"name": "a", "values": [1.0, 0.2]}, {"name": "b", "values": [None, 0.1]}]
    assert out["summary"] == [{"name": "a", "total": 66.0, "per_s": 66.0 / 90}, {"name": "b", "total": 3.0,
                                                                                 "per_s": 3.0 / 90}]


def test_a_ratio_panel_filters_by_labels() -> None:
    panel = next(p for p in PANELS if p.id == "pass-rate")
    steps = [{'atlas_solves_total{status="passed",stopped="done",verified="true"}': 3.0,
              'atlas_solves_total{status="failed",stopped="budget",verified="false"}': 1.0}]
    out = run(panel, steps, [60.0])
    assert out["summary"] == [{"name": panel.title, "part": 3.0, "of": 4.0, "percent": 75.0}]


def test_every_metric_panel_has_an_expression_and_the_committed_grafana_json_is_current() -> None:
    for panel in PANELS:
        assert (panel.query is None) == (panel.kind in ("health", "usage", "recent")), panel.id
        assert grafana.expressions(panel) or panel.query is None
    committed = json.loads((REPO / "docs" / "grafana" / "atlas.json").read_text())
    assert committed == grafana.dashboard(), "regenerate: python -m atlas_dashboard.grafana > docs/grafana/atlas.json"
