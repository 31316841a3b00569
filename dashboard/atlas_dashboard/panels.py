"""The dashboard's panels, defined once: the page draws them from the collector's history, and the same definitions
render the Grafana dashboard (``grafana.py``), so both show the same thing.

Adding a panel is one entry in ``PANELS``: a metric, a kind (how samples become numbers), the labels to split by.
Kinds: ``rate`` (per second), ``count`` (events per step), ``quantiles`` (p50/p95/p99 of a histogram), ``mean``
(a histogram's sum / count), ``gauge`` (the largest report), ``ratio`` (one count over another). The kinds
``health``, ``usage`` and ``recent`` are tables the page fills from elsewhere (probes, the portal, Redis)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["rate", "count", "quantiles", "mean", "gauge", "ratio", "health", "usage", "recent"]
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Query:
    """Samples of one metric family (its base name: ``atlas_proxy_requests`` for ``atlas_proxy_requests_total``),
    those whose labels match ``where``, summed per value of the labels in ``by``."""

    metric: str
    where: Mapping[str, str] = field(default_factory=dict)
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    kind: Kind
    section: str
    query: Query | None = None
    of: Query | None = None  # a ratio's denominator
    unit: str = ""
    admin_only: bool = True  # platform-wide numbers; users see their own usage and tasks only

    def families(self) -> set[str]:
        return {q.metric for q in (self.query, self.of) if q is not None}


def _proxy(metric: str) -> Query:
    # By route as well as model: model `atlas` is both solves (minutes) and task-API calls (milliseconds).
    return Query(metric, by=("model", "route"))


PANELS: tuple[Panel, ...] = (
    Panel("health", "Service health", "health", "Platform"),
    Panel("requests", "Requests per second", "rate", "Traffic", _proxy("atlas_proxy_requests"), unit="req/s"),
    Panel("tokens", "Generated tokens per second", "rate", "Traffic",
          Query("atlas_proxy_tokens", {"kind": "completion"}, ("model",)), unit="tok/s"),
    Panel("rejections", "Rejected requests", "count", "Traffic", Query("atlas_proxy_rejections", by=("reason",)),
          unit="requests"),
    Panel("upstream-errors", "Backend errors", "count", "Traffic",
          Query("atlas_proxy_upstream_errors", by=("backend", "kind")), unit="errors"),
    Panel("ttft", "Time to first token", "quantiles", "Latency", _proxy("atlas_proxy_ttft_seconds"), unit="s"),
    Panel("itl", "Inter-token latency", "quantiles", "Latency", _proxy("atlas_proxy_itl_seconds"), unit="s"),
    Panel("e2e", "End-to-end latency", "quantiles", "Latency", _proxy("atlas_proxy_e2e_seconds"), unit="s"),
    Panel("queue-depth", "Tasks waiting", "gauge", "Tasks", Query("atlas_queue_depth", by=("priority",)),
          unit="tasks"),
    Panel("in-flight", "Tasks running", "gauge", "Tasks", Query("atlas_queue_in_flight"), unit="tasks"),
    Panel("throughput", "Tasks finished", "count", "Tasks", Query("atlas_queue_tasks", by=("status",)),
          unit="tasks"),
    Panel("task-wait", "Task wait (submitted to started)", "quantiles", "Tasks", Query("atlas_queue_wait_seconds"),
          unit="s"),
    Panel("task-run", "Task run time", "quantiles", "Tasks", Query("atlas_queue_run_seconds"), unit="s"),
    Panel("dead-letters", "Dead letters", "gauge", "Tasks", Query("atlas_queue_dead_letters"), unit="tasks"),
    Panel("workers", "Workers alive", "gauge", "Tasks", Query("atlas_queue_workers"), unit="workers"),
    Panel("pass-rate", "Solves passing verification", "ratio", "Solves",
          Query("atlas_solves", {"status": "passed", "verified": "true"}), Query("atlas_solves"), unit="%"),
    Panel("solves", "Solves by outcome", "count", "Solves", Query("atlas_solves", by=("status",)), unit="solves"),
    Panel("k", "Samples per solve (k)", "mean", "Solves", Query("atlas_solve_k")),
    Panel("solve-tokens", "Tokens per solve", "mean", "Solves", Query("atlas_solve_tokens_per_solve"), unit="tokens"),
    Panel("solve-time", "Wall time per solve", "quantiles", "Solves", Query("atlas_solve_seconds", {"part": "total"}),
          unit="s"),
    Panel("repair", "Repairs that fixed the solve", "ratio", "Solves",
          Query("atlas_solve_repairs", {"result": "fixed"}), Query("atlas_solve_repairs"), unit="%"),
    Panel("checks", "Checks the model wrote", "count", "Solves", Query("atlas_solve_checks", by=("kind",)),
          unit="checks"),
    Panel("sandbox-runs", "Programs run in the sandbox for solves", "rate", "Solves", Query("atlas_solve_sandbox_runs"),
          unit="runs/s"),
    Panel("plans", "Plans candidates were written from", "count", "Solves", Query("atlas_solve_plans"), unit="plans"),
    Panel("verdicts", "Sandbox verdicts", "count", "Solves", Query("atlas_sandbox_verdicts", by=("verdict",)),
          unit="runs"),
    # The Lens (rag-api and task-workers): gauges read the largest report, so a version is the newest one live in
    # any process, and its AUC the best (0: no weights, or none measured)
    Panel("lens-version", "Lens weights version live", "gauge", "Lens", Query("atlas_lens_weights_version"),
          unit="version"),
    Panel("lens-auc", "Validation AUC of the live weights", "gauge", "Lens", Query("atlas_lens_validation_auc"),
          unit="AUC"),
    Panel("lens-picks", "Picks the Lens changed (of the solves it scored)", "ratio", "Lens",
          Query("atlas_lens_picks", {"changed": "true"}), Query("atlas_lens_picks"), unit="%"),
    Panel("lens-reloads", "Lens weight versions loaded or refused", "count", "Lens",
          Query("atlas_lens_reloads", by=("result",)), unit="versions"),
    Panel("lens-feedback", "Solve records for Lens training", "count", "Lens",
          Query("atlas_lens_feedback", by=("result",)), unit="records"),
    # The router and the pattern cache (rag-api and task-workers, atlas_router)
    Panel("router-routes", "First route chosen per solve", "count", "Router",
          Query("atlas_router_decisions", by=("route",)), unit="solves"),
    Panel("router-steps", "Route steps by outcome on the public tests", "count", "Router",
          Query("atlas_router_steps", by=("route", "outcome")), unit="steps"),
    Panel("router-escalations", "Escalations to a costlier route", "count", "Router",
          Query("atlas_router_escalations"), unit="steps"),
    Panel("router-posteriors", "Posterior mean success by bin and route", "gauge", "Router",
          Query("atlas_router_posterior_mean", by=("bin", "route")), unit="p"),
    Panel("router-compute", "Compute routed solves spent, of the standard route's", "ratio", "Router",
          Query("atlas_router_compute"), Query("atlas_router_baseline_compute"), unit="%"),
    Panel("pattern-hits", "Pattern-cache lookups close enough to answer", "ratio", "Router",
          Query("atlas_pattern_lookups", {"result": "hit"}), Query("atlas_pattern_lookups"), unit="%"),
    Panel("pattern-lookups", "Pattern-cache lookups by result", "count", "Router",
          Query("atlas_pattern_lookups", by=("result",)), unit="lookups"),
    Panel("pattern-writes", "Patterns written from verified solves", "count", "Router",
          Query("atlas_pattern_writes"), unit="patterns"),
    # Replicas: rag-api's shared admission, and how requests spread over llama-server A's replicas (docs/rag.md)
    Panel("admissions", "Solves admitted or refused (every rag-api replica)", "count", "Replicas",
          Query("atlas_rag_admissions", by=("result",)), unit="solves"),
    Panel("llama-requests", "Requests to llama-server A by replica and outcome", "count", "Replicas",
          Query("atlas_llama_requests", by=("endpoint", "outcome")), unit="requests"),
    Panel("llama-free-slots", "Free slots of each llama-server A replica", "gauge", "Replicas",
          Query("atlas_llama_free_slots", by=("endpoint",)), unit="slots"),
    # Projects: PageIndex, rag-api's retrieval over the code users sync (docs/retrieval.md). A search's mode is the
    # one that ran (`auto` resolves to another), `found` whether it returned anything
    Panel("project-searches", "Project searches by mode and whether they found code", "rate", "Projects",
          Query("atlas_pageindex_searches", by=("mode", "found")), unit="searches/s"),
    Panel("project-search-time", "Project search time by mode", "quantiles", "Projects",
          Query("atlas_pageindex_search_seconds", by=("mode",)), unit="s"),
    Panel("project-files", "Project files synced by outcome", "count", "Projects",
          Query("atlas_pageindex_files", by=("outcome",)), unit="files"),
    Panel("project-embedded", "Pieces of project code embedded", "count", "Projects",
          Query("atlas_pageindex_embedded"), unit="pieces"),
    Panel("project-summaries", "Summaries the model wrote for project code", "count", "Projects",
          Query("atlas_pageindex_summaries"), unit="summaries"),
    Panel("project-tree-calls", "Model calls made by tree searches", "count", "Projects",
          Query("atlas_pageindex_tree_calls"), unit="calls"),
    Panel("project-errors", "Background runs that failed, by stage", "count", "Projects",
          Query("atlas_pageindex_background_errors", by=("stage",)), unit="runs"),
    Panel("usage", "Usage by user and key", "usage", "Usage", admin_only=False),
    Panel("recent", "Latest solves and tasks", "recent", "Usage", admin_only=False),
)


def families(panels: Sequence[Panel] = PANELS) -> frozenset[str]:
    """Every metric family a panel reads: the collector keeps only these."""
    return frozenset(f for p in panels for f in p.families())


# -- evaluation over the collector's steps -------------------------------------------------------------------

# One step's samples by name: sample name -> [(labels, value)], so a panel reads only its own samples.
Step = Mapping[str, Sequence[tuple[Mapping[str, str], float]]]


def _groups(step: Step, name: str, query: Query, extra: tuple[str, ...] = (),
            combine: Callable[[float, float], float] = operator.add) -> dict[tuple[str, ...], float]:
    """Matching samples per ``by`` (and ``extra``) label values, combined: summed (increases), or the largest
    (gauges, ``combine=max``)."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in step.get(name, ()):
        if any(labels.get(k) != v for k, v in query.where.items()):
            continue
        group = tuple(labels.get(k, "") for k in (*query.by, *extra))
        out[group] = combine(out[group], value) if group in out else value
    return out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative bucket counts (upper bound -> count); None without the
    ``+Inf`` bucket (a histogram cut short) or without observations."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != float("inf") or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def _histograms(step: Step, query: Query) -> dict[tuple[str, ...], dict[float, float]]:
    out: dict[tuple[str, ...], dict[float, float]] = {}
    for (*group, le), count in _groups(step, query.metric + "_bucket", query, ("le",)).items():
        try:
            out.setdefault(tuple(group), {})[float(le)] = count
        except ValueError:  # not a bound: never written by a Prometheus client
            continue
    return out


def _name(panel: Panel, group: tuple[str, ...], suffix: str = "") -> str:
    label = " ".join(g for g in group if g) or panel.title
    return f"{label} {suffix}".strip()


def index(fields: Mapping[str, float], parsed: Mapping[str, tuple[str, Mapping[str, str]]]) -> Step:
    """A step as the collector stored it (flattened key -> value), by sample name."""
    out: dict[str, list[tuple[Mapping[str, str], float]]] = {}
    for key, value in fields.items():
        name, labels = parsed[key]
        out.setdefault(name, []).append((labels, value))
    return out


def total(steps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The whole window as one step: increases summed (gauges too, which the summaries never read from it)."""
    whole: dict[str, float] = {}
    for step in steps:
        for key, value in step.items():
            whole[key] = whole.get(key, 0.0) + value
    return whole


def evaluate(panel: Panel, steps: Sequence[Step], whole: Step, spans: Sequence[float]) -> dict[str, Any]:
    """A metric panel's chart series (one value per step, None where there is nothing) and its summary rows
    over the whole window (``whole``: the steps summed). ``spans`` are the seconds each step covers (the
    current one: so far)."""
    query = panel.query
    assert query is not None
    series: dict[str, list[float | None]] = {}

    def put(name: str, i: int, value: float | None) -> None:
        series.setdefault(name, [None] * len(steps))[i] = value

    summary: list[dict[str, Any]] = []
    if panel.kind in ("rate", "count"):
        name = query.metric + "_total"
        for i, step in enumerate(steps):
            for group, value in _groups(step, name, query).items():
                put(_name(panel, group), i, value / spans[i] if panel.kind == "rate" else value)
        seconds = sum(spans) or 1.0
        for group, value in sorted(_groups(whole, name, query).items()):
            summary.append({"name": _name(panel, group), "total": value,
                            **({"per_s": value / seconds} if panel.kind == "rate" else {})})
    elif panel.kind == "gauge":
        last: dict[tuple[str, ...], float] = {}
        for i, step in enumerate(steps):
            for group, value in _groups(step, query.metric, query, combine=max).items():
                put(_name(panel, group), i, value)
                last[group] = value
        summary = [{"name": _name(panel, g), "now": v} for g, v in sorted(last.items())]
    elif panel.kind == "quantiles":
        for i, step in enumerate(steps):
            for group, buckets in _histograms(step, query).items():
                for q in QUANTILES:
                    put(_name(panel, group, f"p{round(q * 100)}"), i, quantile(q, buckets))
        for group, buckets in sorted(_histograms(whole, query).items()):
            summary.append({"name": _name(panel, group), "count": max(buckets.values()),
                            **{f"p{round(q * 100)}": quantile(q, buckets) for q in QUANTILES}})
    elif panel.kind == "mean":
        for i, step in enumerate(steps):
            sums = _groups(step, query.metric + "_sum", query)
            for group, count in _groups(step, query.metric + "_count", query).items():
                put(_name(panel, group), i, sums.get(group, 0.0) / count if count else None)
        sums = _groups(whole, query.metric + "_sum", query)
        for group, count in sorted(_groups(whole, query.metric + "_count", query).items()):
            summary.append({"name": _name(panel, group), "count": count,
                            "mean": sums.get(group, 0.0) / count if count else None})
    elif panel.kind == "ratio":
        assert panel.of is not None
        part, of = query.metric + "_total", panel.of.metric + "_total"
        for i, step in enumerate(steps):
            den = sum(_groups(step, of, panel.of).values())
            if den:
                put(panel.title, i, 100 * sum(_groups(step, part, query).values()) / den)
        den = sum(_groups(whole, of, panel.of).values())
        num = sum(_groups(whole, part, query).values())
        summary = [{"name": panel.title, "part": num, "of": den, "percent": 100 * num / den if den else None}]
    return {"series": [{"name": n, "values": v} for n, v in sorted(series.items())], "summary": summary}
