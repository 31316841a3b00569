"""Prometheus samples flattened to ``name{label="v",...}`` keys, and how samples from several scrapes combine.

Counters and histograms are cumulative: what a minute gets is the increase since the previous scrape of the same
process (a process that restarted starts again from zero, as Prometheus's ``rate`` assumes). Gauges are read as
they are; several processes reporting the same gauge (two task-workers reading one queue) combine by max."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CUMULATIVE_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
ESCAPE = re.compile(r"\\(.)")
LE = re.compile(r'(?<=[{,])le="[^"]*",?')  # a bucket's bound, not a label that merely ends in "le"


@dataclass(frozen=True)
class Scrape:
    """One process's samples of the families asked for: cumulative ones and gauges apart."""

    cumulative: dict[str, float]
    gauges: dict[str, float]


def key_of(name: str, labels: Mapping[str, str]) -> str:
    """``name{a="x",b="y"}``, labels sorted, values escaped as the text format escapes them."""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """The inverse of ``key_of``."""
    name, _, rest = key.partition("{")
    return name, {k: _unescape(v) for k, v in LABEL.findall(rest)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse(text: str, families: frozenset[str], limit: int) -> Scrape:
    """The samples of ``families`` (base names: ``atlas_proxy_requests`` for ``atlas_proxy_requests_total``) in
    a ``/metrics`` text, at most ``limit`` of them (a bound on what one scrape may add to Redis, whatever a
    process exports).

    Not prometheus_client's parser: it is pure Python and took about 60 µs a sample, most of the collector's
    cost (profiled under bench-dashboard). The text format's sample lines are regular enough for two regular
    expressions, and lines of other families are dropped before either runs."""
    cumulative: dict[str, float] = {}
    gauges: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.startswith(_prefixes(families)):
            continue
        if line.startswith("#"):
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                kinds[name] = kind.strip()
            continue
        match = SAMPLE.match(line)
        if match is None or len(cumulative) + len(gauges) >= limit:
            continue
        name, labels, value = match.groups()
        if name.endswith("_created") or _base(name) not in families:
            continue
        found = {k: _unescape(v) for k, v in LABEL.findall(labels or "")}
        into = gauges if kinds.get(name) == "gauge" else cumulative
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):  # NaN cannot be summed or sent as JSON; a gauge never set reads NaN
            into[key_of(name, found)] = number
    return Scrape(cumulative, gauges)


def _base(name: str) -> str:
    for suffix in CUMULATIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unescape(value: str) -> str:
    return ESCAPE.sub(lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value) if "\\" in value else value


@functools.cache
def _prefixes(families: frozenset[str]) -> tuple[str, ...]:
    return tuple(p + f for f in sorted(families) for p in ("", "# HELP ", "# TYPE "))


def increase(now: Mapping[str, float], before: Mapping[str, float] | None) -> dict[str, float]:
    """What each cumulative sample grew by since ``before`` (nothing on a first scrape: it has no baseline).

    Samples that did not move are left out, except a histogram's buckets when any bucket of the same histogram
    moved: a quantile interpolates from the bound below the first bucket that counts, so that bound must be
    there even though nothing fell under it."""
    if before is None:
        return {}
    grown, still = {}, []
    for key, value in now.items():
        previous = before.get(key, 0.0)
        delta = value - previous if value >= previous else value  # a reset: the process started again
        if delta > 0:
            grown[key] = delta
        elif "_bucket{" in key:
            still.append(key)
    moved = {_histogram_of(key) for key in grown if "_bucket{" in key}
    for key in still:
        if _histogram_of(key) in moved:
            grown[key] = 0.0
    return grown


def _histogram_of(bucket_key: str) -> str:
    return LE.sub("", bucket_key)


def combine(increases: Iterable[Mapping[str, float]], gauges: Iterable[Mapping[str, float]]
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Increases add up across processes; gauges take the largest report."""
    total: dict[str, float] = {}
    for grown in increases:
        for key, value in grown.items():
            total[key] = total.get(key, 0.0) + value
    largest: dict[str, float] = {}
    for reported in gauges:
        for key, value in reported.items():
            largest[key] = max(largest.get(key, value), value)
    return total, largest
