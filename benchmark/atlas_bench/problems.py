"""A benchmark problem as the loaders build it: what a user would send (the prompt and the public examples), and
the hidden tests that score the answer once, in the sandbox. The hidden tests never leave ``BenchProblem.hidden``
for anything but the scorer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["assert", "stdin", "functional"]
# Where a statement's worked samples begin: "Sample Input 1", "Example 1:", "Examples", also glued to the
# sentence before it ("...answer).Sample Input 1:").
SAMPLES_START = re.compile(r"(?:^|(?<=[.)\]!?]))[ \t]*(?:#+\s*)?(?:\*\*)?(?:sample\s+input|examples?\s*(?:\d+\s*)?:?"
                           r"\s*$|example\s+input)", re.IGNORECASE | re.MULTILINE)
CONSTRAINTS = re.compile(r"^[ \t]*(?:\*\*)?constraints(?:\*\*)?:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
MODES: tuple[Mode, ...] = ("assert", "stdin", "functional")


@dataclass(frozen=True)
class Hidden:
    """How the answer is scored: the sandbox's /judge ``mode`` with these tests (and ``setup`` between the
    program and an assert test, ``func_name`` for functional tests)."""

    mode: Mode
    tests: list[dict[str, str]]
    setup: str = ""
    func_name: str | None = None
    timeout_s: float = 6.0  # per test, as LiveCodeBench's harness


@dataclass(frozen=True)
class BenchProblem:
    id: str
    dataset: str
    prompt: str  # everything the model is told, examples included
    hidden: Hidden
    public_tests: list[dict[str, Any]] = field(default_factory=list)  # sent with the request (TestIn's shapes)
    entry_point: str | None = None
    language: str = "python"
    difficulty: str | None = None
    contest_date: str | None = None
    canonical: str | None = None  # a reference solution, for checking the scorer (never sent)
    statement: str | None = None  # the part of ``prompt`` that is the problem's own text (where samples are)


class DatasetError(Exception):
    """A dataset that cannot be loaded as asked (missing, unpinned, malformed): one line for the user."""


@dataclass
class Loaded:
    problems: list[BenchProblem]
    files: dict[str, str]  # relative path -> sha256
    unpinned: list[str] = field(default_factory=list)
    public_only: bool = False  # the hidden tests are the public ones (LiveCodeBench's offline copy)


def strip_samples(statement: str) -> str:
    """The statement without its worked samples: from the first "Sample Input" / "Example" header to the
    "Constraints" section when one follows them (LeetCode puts it there), else to the end. With no test sent
    either, the platform has nothing to check against but what it writes itself."""
    found = SAMPLES_START.search(statement)
    if found is None:
        return statement
    rest = CONSTRAINTS.search(statement, found.end())
    return statement[:found.start()].rstrip() + "\n" + ("\n" + statement[rest.start():] if rest else "")


def stripped_prompt(problem: BenchProblem) -> str:
    """The prompt with the statement's samples gone and everything else (format instructions, starter code)
    kept."""
    if problem.statement is None or problem.statement not in problem.prompt:
        return strip_samples(problem.prompt)
    return problem.prompt.replace(problem.statement, strip_samples(problem.statement).rstrip(), 1)
