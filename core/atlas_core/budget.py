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
CHARS_PER_TOKEN = 4  # the proxy's prompt estimate; the engine re-checks with real counts


class BudgetDefaults(AtlasSettings):
    """A solve's budget where the request leaves it unset."""

    rag_k: int = Field(5, ge=1, le=20, description="Candidates a verified solve generates unless its budget says.")
    rag_max_tokens: int = Field(512, ge=16, le=8192, description="Completion tokens per candidate by default.")
    rag_repair_rounds: int = Field(2, ge=0, le=5, description="Repair rounds when no candidate passes, by default.")
    rag_self_tests: bool = Field(True, description="Let the model write tests to rank candidates by (CodeT).")


def prompt_tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN + 1


def solve_ceiling(*, k: int, max_tokens: int, repair_rounds: int, self_tests: bool, prompt_chars: int) -> int:
    """The most tokens (prompt and completion) a solve with this budget spends: k samples, one self-test call,
    and ``REPAIR_WIDTH`` repairs a round, each repair prompt carrying a program and its failure."""
    call = prompt_tokens(prompt_chars) + CALL_OVERHEAD
    samples = k * (call + max_tokens)
    tests = call + min(max_tokens, SELF_TEST_TOKENS) if self_tests else 0
    repairs = repair_rounds * REPAIR_WIDTH * (call + REPAIR_CONTEXT + 2 * max_tokens)
    return samples + tests + repairs


def ceiling_of(budget: dict[str, object] | None, defaults: BudgetDefaults, prompt_chars: int) -> int:
    """``solve_ceiling`` of a request's budget object (fields as in /v1/solve: k, max_tokens, repair_rounds,
    self_tests; unset or null ones take the defaults). The caller has validated the fields' types."""
    b = budget or {}

    def pick(name: str, default: int) -> int:
        value = b.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    self_tests = b.get("self_tests")
    return solve_ceiling(k=pick("k", defaults.rag_k), max_tokens=pick("max_tokens", defaults.rag_max_tokens),
                         repair_rounds=pick("repair_rounds", defaults.rag_repair_rounds),
                         self_tests=self_tests if isinstance(self_tests, bool) else defaults.rag_self_tests,
                         prompt_chars=prompt_chars)
