"""The router benchmark's measures on hand-made records: routed ablations name no k and never teach the router
outside the warm-up, tokens per solved problem with its interval, the paired saving, selected@1 at equal compute,
the route mix, retrievals and the calibration's AUCs."""

from __future__ import annotations

from typing import Any

from atlas_bench.router_eval import (
    auc,
    calibration,
    calibration_rows,
    equal_compute,
    per_solved,
    retrievals,
    route_mix,
    saving,
)
from atlas_bench.run import BenchConfig


def test_routed_ablations_leave_k_to_the_router_and_only_the_warm_up_learns() -> None:
    config = BenchConfig(dataset="mbpp", ablations=("repair", "router", "cache", "learn"))
    assert "k" not in config.budget("router") and "k" not in config.budget("cache")
    assert config.budget("router")["patterns"] is False and config.budget("cache")["patterns"] is True
    assert [config.budget(a)["learn"] for a in ("baseline", "repair", "router", "cache", "learn")] == \
        [False, False, False, False, True]
    assert config.budget("repair")["k"] == 5 and config.budget("repair")["patterns"] is False


def record(pid: str, seed: int, **ablations: tuple[bool, int, dict[str, Any] | None]) -> dict[str, Any]:
    return {"id": pid, "seed": seed, "ablations": {
        name: {"passed": passed, "tokens": tokens, "wall_s": tokens / 100, "route": route}
        for name, (passed, tokens, route) in ablations.items()}}


def route(first: str, steps: list[str], d: float = 0.5, sims: tuple[float, ...] = (), hit: bool = False,
          **signals: float) -> dict[str, Any]:
    return {"route": first, "steps": [{"route": s} for s in steps], "difficulty": d, "signals": signals,
            "patterns": [{"similarity": s} for s in sims], "cache_hit": hit}


RECORDS = [record(f"p{i}", s, baseline=(i < 2, 100, None), repair=(i < 4, 1000, None),
                  router=(i < 4, 300 if i < 2 else 1500, route("fast", ["fast"] if i < 2 else ["fast", "standard"])),
                  cache=(i < 4, 200, route("cache" if i == 0 else "fast", ["fast"], d=i / 10, sims=(0.95 - i / 10,),
                                           hit=i == 0, complexity=i / 10)))
           for i in range(10) for s in (0, 1)]


def test_tokens_per_solved_problem_and_the_paired_saving() -> None:
    fixed, routed = per_solved(RECORDS, "repair"), per_solved(RECORDS, "router")
    assert fixed["selected@1"] == routed["selected@1"] == 0.4
    assert fixed["tokens_per_solved"] == 20 * 1000 / 8 and routed["tokens_per_solved"] == (4 * 300 + 16 * 1500) / 8
    lo, hi = fixed["tokens_per_solved_ci95"]
    assert lo <= fixed["tokens_per_solved"] <= hi
    s = saving(RECORDS, "repair", "router")
    assert s["token_saving_per_solved"] == round(1 - routed["tokens_per_solved"] / fixed["tokens_per_solved"], 4)
    assert s["problems"] == 10 and s["ci95"] is not None


def test_selected_at_equal_compute_interpolates_between_fixed_ks() -> None:
    table = {name: per_solved(RECORDS, name) for name in ("baseline", "repair", "router", "cache")}
    cheap = equal_compute(table, "baseline", "repair", "cache")  # 200 tokens a run: a ninth of the way up
    assert cheap is not None and cheap["fixed_k_selected@1"] == round(0.2 + (100 / 900) * 0.2, 4)
    dear = equal_compute(table, "baseline", "repair", "router")  # 1260 a run: past k = 5, which it is held at
    assert dear is not None and dear["fixed_k_selected@1"] == 0.4 and dear["router_selected@1"] == 0.4


def test_route_mix_retrievals_and_calibration() -> None:
    mix = route_mix(RECORDS, "router")
    assert mix["first"] == {"fast": 20} and mix["escalated"] == 16 and mix["steps_run"]["standard"] == 16
    assert route_mix(RECORDS, "cache")["cache_hits"] == 2
    got = retrievals(RECORDS, "cache")
    assert got["retrieved"] == 10 and got["at_least_0.9"] == ["p0"] and got["best_similarity"]["max"] == 0.95
    rows = calibration_rows(RECORDS, "cache", "repair")
    cal = calibration(rows, [0.25, 0.5, 0.75])
    assert cal["rows"] == 20 and cal["auc_D"] == 1.0  # the harder (higher D) problems are exactly the failures
    assert cal["signals"]["complexity"]["auc"] == 1.0 and [b["n"] for b in cal["bins"]] == [6, 4, 6, 4]
    assert auc([0.1, 0.2], [True, False]) == 0.0 and auc([1.0], [True]) is None
