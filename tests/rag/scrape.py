"""Reading a service's ``/metrics`` (with the metrics credential) as numbers, for before/after comparisons."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_TOKEN


class Metrics:
    """Every sample of one scrape: ``m.value("atlas_solves_total", status="passed")``; 0 for a series that is
    not there (yet)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def delta(self, before: Metrics, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


def scrape(client: httpx.Client | str) -> Metrics:
    """``/metrics`` of a service: an httpx client with its base URL, or the service's URL."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    if isinstance(client, str):
        response = httpx.get(f"{client}/metrics", headers=headers, timeout=30)
    else:
        response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return Metrics(response.text)
