"""The Grafana dashboard, built from the same panel definitions as the page (``python -m atlas_dashboard.grafana
> docs/grafana/atlas.json``; a test checks the committed file is current)."""

from __future__ import annotations

import json
from typing import Any

from atlas_dashboard.panels import PANELS, QUANTILES, Panel, Query

RATE = "[$__rate_interval]"
UNITS = {"s": "s", "%": "percent", "req/s": "reqps"}


def _selector(query: Query, suffix: str = "") -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(query.where.items()))
    return f"{query.metric}{suffix}{{{labels}}}" if labels else f"{query.metric}{suffix}"


def _by(query: Query, *extra: str) -> str:
    labels = [*extra, *query.by]
    return f" by ({', '.join(labels)})" if labels else ""


def expressions(panel: Panel) -> list[tuple[str, str]]:
    """``(PromQL, legend)`` pairs that draw what the page draws for ``panel``."""
    q = panel.query
    if q is None:
        return []
    legend = " ".join(f"{{{{{label}}}}}" for label in q.by) or panel.title
    if panel.kind == "rate":
        return [(f"sum{_by(q)} (rate({_selector(q, '_total')}{RATE}))", legend)]
    if panel.kind == "count":
        return [(f"sum{_by(q)} (increase({_selector(q, '_total')}[$__interval]))", legend)]
    if panel.kind == "gauge":
        return [(f"max{_by(q)} ({_selector(q)})", legend)]
    if panel.kind == "mean":
        return [(f"sum{_by(q)} (rate({_selector(q, '_sum')}{RATE})) / sum{_by(q)} (rate({_selector(q, '_count')}"
                 f"{RATE}))", legend)]
    if panel.kind == "ratio":
        assert panel.of is not None
        return [(f"100 * sum(rate({_selector(q, '_total')}{RATE})) / sum(rate({_selector(panel.of, '_total')}"
                 f"{RATE}))", panel.title)]
    return [(f"histogram_quantile({quantile}, sum{_by(q, 'le')} (rate({_selector(q, '_bucket')}{RATE})))",
             f"{legend} p{round(quantile * 100)}") for quantile in QUANTILES]


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    for i, panel in enumerate(p for p in PANELS if p.query is not None):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": panel.title,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": UNITS.get(panel.unit, "short")}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(expressions(panel))],
        })
    return {
        "title": "ATLAS", "uid": "atlas-platform", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["atlas"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


def main() -> None:
    print(json.dumps(dashboard(), indent=2))


if __name__ == "__main__":
    main()
