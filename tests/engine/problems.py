"""Helpers of the problem and example tests: run trusted sources, the failures of a program on parsed tests, a
request."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from atlas_engine.contracts import SolveRequest
from atlas_engine.problem import EQ_HELPER
from atlas_engine.problem import Test as ParsedTest  # imported as Test, pytest would try to collect it

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def run(*sources: str) -> None:
    """Execute the sources as one program in a fresh namespace (trusted text only: datasets and this file)."""
    with warnings.catch_warnings():
        # Benchmark code from 2021 has regexes like '\w' in plain strings: a DeprecationWarning in 3.11, a
        # SyntaxWarning from 3.12, and not what these tests are about.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        exec(compile("\n".join(sources), "<test>", "exec"), {})  # noqa: S102


def failures(program: str, tests: list[ParsedTest]) -> list[str]:
    """The tests that ``program`` (with EQ_HELPER) does not pass, each with the error it raised."""
    failed = []
    for t in tests:
        try:
            run(EQ_HELPER, program, t.code)
        except Exception as exc:
            failed.append(f"{t.code} -> {exc!r}")
    return failed


def request(problem: str, **fields: Any) -> SolveRequest:
    return SolveRequest.model_validate({"problem": problem, **fields})


# -- examples in the problem text ---------------------------------------------------------------------------
