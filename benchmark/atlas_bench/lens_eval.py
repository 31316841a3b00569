"""The Lens's measures on evaluation runs (``make bench-lens``): which candidates the public tests leave tied, how
often the Lens's top pick among them passes the hidden tests against a random pick, and the selected@1 and
sandbox runs of the Lens ablations beside the pipeline without it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# How far a sample got on the public tests, best first (atlas_engine.select.PROGRESS, as the platform reports it)
PROGRESS = {"passed": 0, "TestFailure": 1, "OutputLimit": 2, "RuntimeError": 2, "Timeout": 2, "MemoryLimit": 2,
            "untested": 3, "Skipped": 3, "CompileError": 4, "SyntaxError": 4}


@dataclass
class TieSet:
    task: str
    seed: int
    codes: list[str]
    passed: list[bool]  # hidden-test labels, one per code

    @property
    def mixed(self) -> bool:
        return any(self.passed) and not all(self.passed)


def tie_sets(records: Sequence[dict[str, Any]], ablation: str = "public") -> list[TieSet]:
    """Per (problem, seed): the distinct sampled programs that share the best public outcome (all passed the
    public tests; or, none having passed, all got equally far), when there are two or more."""
    out = []
    for record in records:
        samples = [s for s in ((record.get("ablations") or {}).get(ablation) or {}).get("samples") or []
                   if s.get("code")]
        distinct = list({s["code"]: s for s in samples}.values())
        if len(distinct) < 2:
            continue
        best = min(PROGRESS.get(s.get("verdict") or "untested", 3) for s in distinct)
        tied = [s for s in distinct if PROGRESS.get(s.get("verdict") or "untested", 3) == best]
        if len(tied) >= 2:
            out.append(TieSet(record["id"], record["seed"], [s["code"] for s in tied],
                              [bool(s["passed"]) for s in tied]))
    return out


def first_pick(ties: Sequence[TieSet], energies: Callable[[TieSet], Sequence[float]], rounds: int = 1000,
               seed: int = 0) -> dict[str, Any]:
    """The Lens's top pick (lowest energy) against a random pick, over tie sets: hidden-test pass rates, their
    ratio, and a 95 % interval of the ratio resampling tie sets."""
    lens, random = [], []
    for t in ties:
        e = np.asarray(energies(t), dtype=np.float64)
        lens.append(float(t.passed[int(e.argmin())]))
        random.append(float(np.mean(t.passed)))
    lens_a, random_a = np.array(lens), np.array(random)
    result: dict[str, Any] = {"tie_sets": len(ties), "mixed": sum(t.mixed for t in ties),
                              "lens_pick": _mean(lens_a), "random_pick": _mean(random_a)}
    if len(ties) == 0 or random_a.sum() == 0:
        result |= {"gain": None, "gain_ci95": None}
        return result
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(rounds):
        idx = rng.integers(0, len(ties), len(ties))
        if random_a[idx].sum() > 0:
            ratios.append(lens_a[idx].sum() / random_a[idx].sum())
    result["gain"] = round(float(lens_a.sum() / random_a.sum()), 3)
    result["gain_ci95"] = [round(float(np.percentile(ratios, 2.5)), 3), round(float(np.percentile(ratios, 97.5)), 3)]
    return result


def _mean(a: np.ndarray) -> float | None:
    return round(float(a.mean()), 4) if len(a) else None


def ablation_rows(summary: dict[str, Any], names: Sequence[str] = ("public", "lens", "lens-stop")
                  ) -> list[dict[str, Any]]:
    """selected@1, its interval and per-seed values, sandbox runs and tokens per task, from a results.json."""
    rows = []
    for name in names:
        a = (summary.get("ablations") or {}).get(name)
        if not a:
            continue
        rows.append({"ablation": name, "tasks": a["tasks"], "selected@1": a["selected@1"], "ci95": a["ci95"],
                     "per_seed": a.get("per_seed"), "sandbox_runs_per_task": a.get("sandbox_runs_per_task"),
                     "sandbox_calls_per_task": a.get("sandbox_calls_per_task"),
                     "tokens_per_task": a.get("tokens_per_task"), "wall_s_per_task": a.get("wall_s_per_task")})
    return rows


def paired_runs(records: Sequence[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """Sandbox runs per solve of ablation ``b`` against ``a`` on the same (problem, seed) pairs, and how often
    each selected a program that passes the hidden tests there."""
    pairs = [(r["ablations"][a], r["ablations"][b]) for r in records if a in r["ablations"] and b in r["ablations"]]
    if not pairs:
        return {"pairs": 0}
    # early stopping can save runs only where some program passes the public tests
    passing = [(x, y) for x, y in pairs if x.get("public_verified")]
    return {"pairs": len(pairs), **_runs(pairs, a, b), "where_a_program_passed": {"pairs": len(passing),
                                                                                 **_runs(passing, a, b)},
            f"{a}_selected@1": round(float(np.mean([bool(x["passed"]) for x, _ in pairs])), 4),
            f"{b}_selected@1": round(float(np.mean([bool(y["passed"]) for _, y in pairs])), 4),
            "flips": {"to_pass": sum(1 for x, y in pairs if y["passed"] and not x["passed"]),
                      "to_fail": sum(1 for x, y in pairs if x["passed"] and not y["passed"])}}


def _runs(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], a: str, b: str) -> dict[str, Any]:
    runs_a = [x.get("sandbox_runs") or 0 for x, _ in pairs]
    runs_b = [y.get("sandbox_runs") or 0 for _, y in pairs]
    if not pairs:
        return {}
    return {f"{a}_runs": round(float(np.mean(runs_a)), 3), f"{b}_runs": round(float(np.mean(runs_b)), 3),
            "fewer_share": round(1.0 - float(np.sum(runs_b)) / max(1.0, float(np.sum(runs_a))), 3)}
