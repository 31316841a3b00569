"""What a verified solve may spend, in tokens: one rule shared by the proxy (which reserves it against the key's and
user's tokens per minute before the solve starts), rag-api and the task-workers (which never spend more than was
reserved: the engine stops a solve whose next model call would pass its cap).

The defaults of a solve's budget (``ATLAS_RAG_K`` ...) are settings here, not in rag-api, so every service that
reserves or spends reads the same keys from atlas.conf::

    ceiling = solve_ceiling(k=5, max_tokens=512, repair_rounds=2, self_tests=True, prompt_chars=1_200)
"""

from __future__ import annotations

from pydantic import Field

from atlas_core.settings import AtlasSettings

REPAIR_WIDTH = 2  # failing programs repaired per round (the engine's constant)
CALL_OVERHEAD = 256  # instructions and chat template around the problem, per model call
REPAIR_CONTEXT = 512  # the failure (test, expected, got, error) a repair prompt adds, besides the code
SELF_TEST_TOKENS = 512  # the self-test call's completion is capped at this (or the candidate's limit if lower)
PLAN_TOKENS = 512  # the plans call's completion cap (so also the most one plan adds to its candidate's prompt)
CHARS_PER_TOKEN = 4  # the proxy's prompt estimate; the engine re-checks with real counts


class BudgetDefaults(AtlasSettings):
    """A solve's budget where the request leaves it unset."""

    rag_k: int = Field(5, ge=1, le=20, description="Candidates a verified solve generates unless its budget says.")
    rag_max_tokens: int = Field(512, ge=16, le=8192, description="Completion tokens per candidate by default.")
    rag_repair_rounds: int = Field(2, ge=0, le=5, description="Repair rounds when no candidate passes, by default.")
    rag_self_tests: bool = Field(
        True, description="Let the model write checks to rank candidates by: asserts for a Python function "
        "(CodeT), test inputs and an input generator for a program that reads stdin (AlphaCode clustering).")
    rag_plans: int = Field(
        0, ge=0, le=19, description="Of a solve's k candidates, how many are written each from a distinct "
        "natural-language plan (PlanSearch) unless its budget says; costs one model call for the plans. 0 by "
        "default until it is measured to raise pass@k (docs/benchmarks.md, Checks and plans).")
    rag_deep_k: int = Field(20, ge=6, le=20, description="Candidates of the router's deep route (in all: the "
                            "samples of the cheaper routes it escalated from count).")
    rag_deep_plans: int = Field(8, ge=0, le=19, description="Of the deep route's candidates, how many are written "
                                "from distinct plans (PlanSearch).")
    rag_deep_repairs: int = Field(3, ge=0, le=5, description="Repair rounds of the router's deep route.")


def prompt_tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN + 1


def solve_ceiling(*, k: int, max_tokens: int, repair_rounds: int, self_tests: bool, prompt_chars: int,
                  plans: int = 0) -> int:
    """The most tokens (prompt and completion) a solve with this budget spends: k samples (each plan-first one
    carrying its plan), one call for the plans, one self-test call, and ``REPAIR_WIDTH`` repairs a round, each
    repair prompt carrying a program and its failure."""
    call = prompt_tokens(prompt_chars) + CALL_OVERHEAD
    plans = min(plans, k - 1)
    samples = k * (call + max_tokens) + (call + PLAN_TOKENS + plans * PLAN_TOKENS if plans > 0 else 0)
    tests = call + min(max_tokens, SELF_TEST_TOKENS) if self_tests else 0
    repairs = repair_rounds * REPAIR_WIDTH * (call + REPAIR_CONTEXT + 2 * max_tokens)
    return samples + tests + repairs


def routed_ceiling(defaults: BudgetDefaults, max_tokens: int, prompt_chars: int, repair_rounds: int | None = None,
                   plans: int | None = None) -> int:
    """The most a solve that names no k spends: its router may escalate it fast -> standard -> deep, each step
    keeping the samples before it (k = the deep route's in all) and adding its own repair rounds (1, the
    standard's, the deep's; a named ``repair_rounds`` holds on every step)."""
    rounds = 3 * repair_rounds if repair_rounds is not None else \
        1 + defaults.rag_repair_rounds + max(defaults.rag_repair_rounds, defaults.rag_deep_repairs)
    return solve_ceiling(k=defaults.rag_deep_k, max_tokens=max_tokens, repair_rounds=rounds, self_tests=True,
                         prompt_chars=prompt_chars, plans=defaults.rag_deep_plans if plans is None else plans)


def ceiling_of(budget: dict[str, object] | None, defaults: BudgetDefaults, prompt_chars: int) -> int:
    """``solve_ceiling`` of a request's budget object (fields as in /v1/solve: k, max_tokens, repair_rounds,
    self_tests, plans; unset or null ones take the defaults); without k, the router's (``routed_ceiling``).
    The caller has validated the fields' types."""
    b = budget or {}

    def pick(name: str, default: int) -> int:
        value = b.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    if not isinstance(b.get("k"), int):
        named = {f: b[f] for f in ("repair_rounds", "plans") if isinstance(b.get(f), int)}
        return routed_ceiling(defaults, pick("max_tokens", defaults.rag_max_tokens), prompt_chars,
                              **named)  # type: ignore[arg-type]
    self_tests = b.get("self_tests")
    return solve_ceiling(k=pick("k", defaults.rag_k), max_tokens=pick("max_tokens", defaults.rag_max_tokens),
                         repair_rounds=pick("repair_rounds", defaults.rag_repair_rounds),
                         self_tests=self_tests if isinstance(self_tests, bool) else defaults.rag_self_tests,
                         prompt_chars=prompt_chars, plans=pick("plans", defaults.rag_plans))
