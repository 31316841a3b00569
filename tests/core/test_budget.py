"""The token ceiling of a solve's budget, which the proxy reserves and the engine never passes."""

from __future__ import annotations

import functools

from atlas_core.budget import CALL_OVERHEAD, PLAN_TOKENS, BudgetDefaults, ceiling_of, solve_ceiling


def test_plans_add_the_plans_call_and_a_plan_per_planned_candidate() -> None:
    ceiling = functools.partial(solve_ceiling, k=5, max_tokens=512, repair_rounds=0, self_tests=False,
                                prompt_chars=400)
    call = 400 // 4 + 1 + CALL_OVERHEAD
    assert ceiling(plans=2) - ceiling() == call + PLAN_TOKENS + 2 * PLAN_TOKENS
    assert ceiling(plans=9) == ceiling(plans=4)  # the first candidate is always direct
    assert ceiling(k=1, plans=3) == ceiling(k=1)


def test_ceiling_of_a_request_budget_reads_plans_and_the_default() -> None:
    defaults = BudgetDefaults(rag_plans=0)
    with_plans = ceiling_of({"k": 5, "plans": 2}, defaults, 400)
    assert with_plans == solve_ceiling(k=5, max_tokens=512, repair_rounds=2, self_tests=True, prompt_chars=400,
                                       plans=2)
    assert ceiling_of({"k": 5}, BudgetDefaults(rag_plans=2), 400) == with_plans
    assert ceiling_of({"k": 5}, defaults, 400) < with_plans


def test_a_budget_without_k_reserves_what_its_routes_may_spend() -> None:
    """No k: the router may escalate fast -> standard -> deep; the reservation covers the deep route's samples
    and plans and every step's repair rounds, and a named repair_rounds holds on each step."""
    defaults = BudgetDefaults()
    routed = ceiling_of({}, defaults, 400)
    assert routed == solve_ceiling(k=20, max_tokens=512, repair_rounds=1 + 2 + 3, self_tests=True,
                                   prompt_chars=400, plans=8)
    assert routed > ceiling_of({"k": 20, "self_tests": True, "plans": 8, "repair_rounds": 5}, defaults, 400)
    assert ceiling_of({"repair_rounds": 0, "max_tokens": 64}, defaults, 400) == solve_ceiling(
        k=20, max_tokens=64, repair_rounds=0, self_tests=True, prompt_chars=400, plans=8)
    small = BudgetDefaults(rag_deep_k=6, rag_deep_plans=0, rag_deep_repairs=0)
    assert ceiling_of({}, small, 400) < routed
