"""A problem as the engine sees it: its text, language, entry point and the tests a user has (the request's own
tests and the examples written in the problem, ``examples``). Hidden tests never get here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from atlas_core.errors import Unrecoverable

Mode = Literal["assert", "stdin", "functional", "pytest"]
Source = Literal["user", "example", "self"]
ASSERT_LANGUAGES = {"python", "javascript"}
MAX_LABEL = 2000
# Compares like doctest's eye would: floats within 1e-6, tuples as lists, everything else with ==.
EQ_HELPER = '''
def __atlas_eq(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
        except TypeError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(__atlas_eq(x, y) for x, y in zip(a, b))
    return a == b
'''
class ProblemError(ValueError, Unrecoverable):
    """The request cannot be solved as given; ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Test:
    __test__ = False  # not a pytest test class, whatever its name
    mode: Mode
    source: Source
    code: str = ""  # assert: a statement run after the program
    input: str = ""  # stdin: the input; functional: one JSON argument per line
    output: str = ""  # stdin / functional: what must come out
    call: str | None = None  # Python: the entry-point call this test makes (an input for agreement)
    expected: str | None = None  # Python: the expected value's source

    def label(self) -> str:
        """The test as the answer and a repair prompt show it, cut to ``MAX_LABEL`` characters (a stdin test may
        be megabytes)."""
        if self.mode in ("assert", "pytest"):
            text = self.code
        elif self.mode == "functional":
            text = f"call with {self.input.strip()!s} -> {self.output}"
        else:
            text = f"stdin {self.input!r} -> {self.output!r}"
        return text if len(text) <= MAX_LABEL else text[:MAX_LABEL] + " ..."


@dataclass(frozen=True)
class Workspace:
    """A project's own pytest files for a solve, and the files they run among (rag-api reads them from the
    caller's project): each test becomes a public ``pytest`` test; ``files`` go to the sandbox with every run."""

    tests: list[tuple[str, str]]  # (path in the project, its content)
    files: dict[str, str]


@dataclass
class Problem:
    text: str
    language: str
    entry_point: str | None
    tests: list[Test] = field(default_factory=list)  # user tests, then the problem's own examples
    method_of: str | None = None  # LeetCode style: the entry point is a method of this class (``Solution``)
    # A project's files the program runs among (its pytest tests import them): path -> content, for the sandbox.
    files: dict[str, str] = field(default_factory=dict)

    def call(self, expr: str) -> str:
        """A call of the entry point as the program exposes it: ``Solution().f(x)`` for LeetCode-style code."""
        return f"{self.method_of}().{expr}" if self.method_of else expr

    @property
    def reads_stdin(self) -> bool:
        """A whole program (stdin to stdout) rather than a function the tests call."""
        return self.entry_point is None or self.language not in ASSERT_LANGUAGES

    def count(self, source: Source) -> int:
        return sum(1 for t in self.tests if t.source == source)


CODING = re.compile(
    r"```|^[ \t]*(?:def|class|fn|func|function|#include|import|from)\b|\bint\s+main\s*\(|"
    r"\b(?:write|implement|create|complete|fix|code|build)\b[^.?!\n]{0,60}\b(?:function|program|script|method|"
    r"class|algorithm|code|solution)\b|\bsample input\b|\bclass Solution\b",
    re.IGNORECASE | re.MULTILINE,
)
# A language named outright; the first one named wins ("a Python function for a linked-list node").
LANGUAGE_NAMES = [
    ("cpp", re.compile(r"\bc\+\+|\bcpp\b", re.IGNORECASE)),
    ("rust", re.compile(r"\brust\b", re.IGNORECASE)),
    ("javascript", re.compile(r"\bjavascript\b|\bnode\.js\b", re.IGNORECASE)),
    ("bash", re.compile(r"\bbash\b|\bshell script\b", re.IGNORECASE)),
    ("c", re.compile(r"\bin C\b|\bC program\b|\bANSI C\b|#include\s*<stdio\.h>")),
    ("python", re.compile(r"\bpython\b", re.IGNORECASE)),
]
LANGUAGE_HINTS = [("javascript", re.compile(r"\bjs\b|\bnode\b", re.IGNORECASE))]  # weaker: only if none is named


def is_coding_problem(text: str) -> bool:
    """Whether a chat message asks for code (the verified path) or is plain conversation (the model alone)."""
    return CODING.search(text) is not None


def guess_language(text: str) -> str:
    named = [(m.start(), language) for language, pattern in LANGUAGE_NAMES if (m := pattern.search(text))]
    if named:
        return min(named)[1]
    return next((language for language, pattern in LANGUAGE_HINTS if pattern.search(text)), "python")
