"""The router's and the pattern cache's measures over atlas-bench records (``make bench-router``): compute per
solved problem with bootstrap intervals over problems, the saving of one ablation against another on the same
(problem, seed) pairs, selected@1 at equal compute, the route mix, what the cache retrieved, and whether the
difficulty signals predict failure (a calibration table and each signal's AUC)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from atlas_router import BINS

RESAMPLES = 2000


def _by_problem(records: Sequence[dict[str, Any]], ablation: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        a = (r.get("ablations") or {}).get(ablation)
        if a is not None:
            out[r["id"]].append(a)
    return out


def _ratio(groups: list[list[dict[str, Any]]], field: str) -> float | None:
    solved = sum(bool(a["passed"]) for g in groups for a in g)
    return sum(float(a.get(field) or 0) for g in groups for a in g) / solved if solved else None


def _interval(values: list[float]) -> list[float] | None:
    if len(values) < 20:
        return None
    values = sorted(values)
    return [round(values[int(0.025 * len(values))], 3), round(values[int(0.975 * len(values)) - 1], 3)]


def per_solved(records: Sequence[dict[str, Any]], ablation: str, seed: int = 0) -> dict[str, Any]:
    """Tokens and wall seconds per problem the hidden tests call solved (sums over every run, divided by the runs
    that passed), with a 95 % bootstrap interval over problems; and selected@1."""
    groups = list(_by_problem(records, ablation).values())
    rng = random.Random(seed)  # noqa: S311 - resampling, not secrecy
    out: dict[str, Any] = {"runs": sum(len(g) for g in groups), "problems": len(groups),
                           "solved": sum(bool(a["passed"]) for g in groups for a in g)}
    out["selected@1"] = round(out["solved"] / out["runs"], 4) if out["runs"] else None
    for field, name in (("tokens", "tokens_per_solved"), ("wall_s", "wall_s_per_solved")):
        value = _ratio(groups, field)
        draws = [_ratio([rng.choice(groups) for _ in groups], field) for _ in range(RESAMPLES)] if groups else []
        out[name] = round(value, 1) if value is not None else None
        out[name + "_ci95"] = _interval([d for d in draws if d is not None])
        out["mean_" + field] = round(sum(float(a.get(field) or 0) for g in groups for a in g) / out["runs"], 2) \
            if out["runs"] else None
    return out


def saving(records: Sequence[dict[str, Any]], base: str, other: str, seed: int = 0) -> dict[str, Any]:
    """1 - (tokens per solved of ``other``) / (``base``'s), on the problems both ran, with a paired bootstrap
    interval over problems (positive: ``other`` spends less per solved problem)."""
    a, b = _by_problem(records, base), _by_problem(records, other)
    ids = sorted(set(a) & set(b))
    rng = random.Random(seed)  # noqa: S311 - resampling, not secrecy

    def value(pick: list[str]) -> float | None:
        x, y = _ratio([a[i] for i in pick], "tokens"), _ratio([b[i] for i in pick], "tokens")
        return 1 - y / x if x and y else None

    point = value(ids)
    draws = [value([rng.choice(ids) for _ in ids]) for _ in range(RESAMPLES)] if ids else []
    return {"base": base, "other": other, "problems": len(ids),
            "token_saving_per_solved": round(point, 4) if point is not None else None,
            "ci95": _interval([d for d in draws if d is not None])}


def equal_compute(summary: dict[str, dict[str, Any]], low: str, high: str, routed: str) -> dict[str, Any] | None:
    """Selected@1 of fixed k at the routed ablation's mean tokens per run, interpolated between two fixed-k
    ablations (say k = 1 and k = 5), beside the routed one's."""
    lo, hi, r = summary.get(low), summary.get(high), summary.get(routed)
    if not lo or not hi or not r or None in (lo["mean_tokens"], hi["mean_tokens"], r["mean_tokens"]):
        return None
    span = hi["mean_tokens"] - lo["mean_tokens"]
    t = min(1.0, max(0.0, (r["mean_tokens"] - lo["mean_tokens"]) / span)) if span else 1.0
    fixed = lo["selected@1"] + t * (hi["selected@1"] - lo["selected@1"])
    return {"tokens": r["mean_tokens"], "fixed_k_selected@1": round(fixed, 4), routed + "_selected@1":
            r["selected@1"], "between": [low, high]}


def route_mix(records: Sequence[dict[str, Any]], ablation: str) -> dict[str, Any]:
    first: Counter[str] = Counter()
    ran: Counter[str] = Counter()
    escalated = hits = 0
    for group in _by_problem(records, ablation).values():
        for a in group:
            route = a.get("route") or {}
            first[route.get("route", "none")] += 1
            steps = [s["route"] for s in route.get("steps") or []]
            ran.update(steps)
            escalated += len(steps) > 1
            hits += bool(route.get("cache_hit"))
    return {"first": dict(first), "steps_run": dict(ran), "escalated": escalated, "cache_hits": hits}


def retrievals(records: Sequence[dict[str, Any]], ablation: str) -> dict[str, Any]:
    """How many evaluation prompts retrieved a pattern, and how similar the best one was (leakage would show as
    similarities near 1)."""
    best: dict[str, float] = {}
    for pid, group in _by_problem(records, ablation).items():
        sims = [p["similarity"] for a in group for p in (a.get("route") or {}).get("patterns") or []]
        if sims:
            best[pid] = max(sims)
    values = sorted(best.values())
    return {"problems": len(_by_problem(records, ablation)), "retrieved": len(best),
            "best_similarity": {"median": values[len(values) // 2] if values else None,
                                "max": values[-1] if values else None},
            "at_least_0.9": sorted(p for p, s in best.items() if s >= 0.9)}


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mann-Whitney AUC: how often a failing problem's score exceeds a passing one's (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def calibration(rows: Sequence[tuple[float, dict[str, float], bool]], bounds: Sequence[float]) -> dict[str, Any]:
    """Rows of (difficulty D, signals, failed): the failure rate in each bin of D, and the AUC of D and of each
    signal for telling failures from successes (0.5: no information)."""
    table = []
    for n, name in enumerate(BINS):
        lo = 0.0 if n == 0 else bounds[n - 1]
        hi = 1.01 if n == len(BINS) - 1 else bounds[n]
        inside = [f for d, _, f in rows if lo <= d < hi]
        table.append({"bin": name, "from": lo, "to": min(hi, 1.0), "n": len(inside),
                      "failure_rate": round(sum(inside) / len(inside), 3) if inside else None})
    failed = [f for _, _, f in rows]
    signals = sorted({name for _, s, _ in rows for name in s})
    per_signal = {}
    for name in signals:
        have = [(s[name], f) for _, s, f in rows if name in s]
        per_signal[name] = {"n": len(have), "auc": auc([x for x, _ in have], [f for _, f in have])}
    return {"rows": len(rows), "failure_rate": round(sum(failed) / len(failed), 3) if failed else None,
            "bins": table, "auc_D": auc([d for d, _, _ in rows], failed), "signals": per_signal}


def calibration_rows(records: Sequence[dict[str, Any]], signal_from: str, outcome_from: str
                     ) -> list[tuple[float, dict[str, float], bool]]:
    """(D, signals) as ``signal_from``'s route reported them, and whether ``outcome_from`` failed the hidden
    tests, per (problem, seed)."""
    rows = []
    for r in records:
        a = (r.get("ablations") or {})
        route, outcome = (a.get(signal_from) or {}).get("route"), a.get(outcome_from)
        if route and route.get("difficulty") is not None and outcome is not None:
            rows.append((float(route["difficulty"]), dict(route.get("signals") or {}), not outcome["passed"]))
    return rows
