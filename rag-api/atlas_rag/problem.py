"""A problem as the engine sees it, and the tests a user has: the request's own tests and the examples written
in the problem (doctests, ``f(x) == y`` lines, asserts, Input/Output samples). Hidden tests never get here."""

from __future__ import annotations

import ast
import builtins
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Literal

from atlas_rag.schemas import SolveRequest, TestIn

Mode = Literal["assert", "stdin", "functional"]
Source = Literal["user", "example", "self"]
ASSERT_LANGUAGES = {"python", "javascript"}
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
ARROW = re.compile(r"^\s*(?:[*\-•]\s*)?(?:for\s+)?(?:>>>\s*)?(?P<call>[A-Za-z_][A-Za-z0-9_]*\(.*\))\s*"
                   r"(?P<op>==>|=>|==|=|➞|→|->|should return|returns|should be)\s*(?P<value>.+?)\s*[.,;]?\s*$",
                   re.IGNORECASE)
# "For lst = [1,2,3] the output should be 14" (a one-parameter function).
FOR_PARAM = re.compile(r"^\s*for\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<arg>.+?),?\s+the output should be\s+"
                       r"(?P<value>.+?)\s*[.,;]?\s*$", re.IGNORECASE)
SAMPLE_HEADER = re.compile(r"^\s*(?:sample\s+|example\s+)?(input|output)(?:\s*#?\s*\d+)?\s*:?\s*$", re.IGNORECASE)
INLINE_IO = re.compile(r"^\s*(input|output)\s*:\s*(.+)$", re.IGNORECASE)
BUILTINS = set(dir(builtins))


class ProblemError(ValueError):
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
        if self.mode == "assert":
            return self.code
        if self.mode == "functional":
            return f"call with {self.input.strip()!s} -> {self.output}"
        return f"stdin {self.input!r} -> {self.output!r}"


@dataclass
class Problem:
    text: str
    language: str
    entry_point: str | None
    tests: list[Test] = field(default_factory=list)  # user tests, then the problem's own examples
    method_of: str | None = None  # LeetCode style: the entry point is a method of this class (``Solution``)

    def call(self, expr: str) -> str:
        """A call of the entry point as the program exposes it: ``Solution().f(x)`` for LeetCode-style code."""
        return f"{self.method_of}().{expr}" if self.method_of else expr

    @property
    def reads_stdin(self) -> bool:
        """A whole program (stdin to stdout) rather than a function the tests call."""
        return self.entry_point is None or self.language not in ASSERT_LANGUAGES

    def count(self, source: Source) -> int:
        return sum(1 for t in self.tests if t.source == source)


def build_problem(request: SolveRequest) -> Problem:
    """The engine's problem for a request; raises ProblemError for tests that cannot run as given."""
    language = request.language
    user = [_user_test(t, i, language) for i, t in enumerate(request.tests)]
    entry = request.entry_point or find_entry_point(request.problem, user, language)
    for i, (test, given) in enumerate(zip(user, request.tests, strict=True)):
        if test.mode == "functional":
            if not entry:
                raise ProblemError(f"tests.{i}", "function-call tests need 'entry_point' (the function to call)")
            test.call = f"{entry}(*{given.args!r})"
    owner = method_owner(request.problem, entry) if language == "python" else None
    examples = parse_examples(request.problem, entry, language, owner)
    if user and examples:  # the same example given twice counts once, however it is written
        seen = {(t.mode, t.code, t.input, t.output) for t in user} | {(t.call, t.expected) for t in user if t.call}
        examples = [t for t in examples if (t.mode, t.code, t.input, t.output) not in seen and
                    (t.call is None or (t.call, t.expected) not in seen)]
    problem = Problem(text=request.problem, language=language, entry_point=entry, tests=user + examples,
                      method_of=owner)
    if problem.reads_stdin and any(t.mode != "stdin" for t in user):
        raise ProblemError("entry_point", f"assert and function-call tests in {language} need the function's "
                           "name ('entry_point'), and only Python and JavaScript run asserts")
    return problem


def _user_test(test: TestIn, index: int, language: str) -> Test:
    if test.assert_ is not None:
        if language not in ASSERT_LANGUAGES:
            raise ProblemError(f"tests.{index}", f"assert tests run in Python and JavaScript, not {language}; "
                               "give stdin tests ({'input': ..., 'output': ...}) instead")
        call, expected = split_assert(test.assert_) if language == "python" else (None, None)
        return Test("assert", "user", code=test.assert_, call=call, expected=expected)
    if test.args is not None:
        if language != "python":
            raise ProblemError(f"tests.{index}", "function-call tests run in Python; use stdin tests for "
                               f"{language}")
        return Test("functional", "user", input="\n".join(json.dumps(a) for a in test.args) + "\n",
                    output=json.dumps(test.expected), expected=repr(test.expected))
    return Test("stdin", "user", input=test.input or "", output=test.output or "")


def find_entry_point(text: str, tests: list[Test], language: str) -> str | None:
    """The function the tests call, else the last function the problem defines, else one it names."""
    for test in tests:
        if test.call:
            return test.call.split("(", 1)[0]
    if language == "python":
        defs: list[str] = re.findall(r"^\s*def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", text, re.MULTILINE)
        public = [d for d in defs if not d.startswith("_")] or defs
        if public:
            return public[-1]
        for line in text.splitlines():
            call, _ = split_assert(line.strip()) if line.strip().startswith("assert ") else (None, None)
            if call:
                return call.split("(", 1)[0]
        doctest = re.search(r"^\s*>>>\s*([A-Za-z_][A-Za-z0-9_]*)\(", text, re.MULTILINE)
        if doctest and doctest.group(1) not in BUILTINS:
            return doctest.group(1)
    if language == "javascript":
        found: list[str] = re.findall(r"function\s+([A-Za-z_$][A-Za-z0-9_$]*)\s*\(", text)
        if found:
            return found[-1]
    named = re.search(r"(?:function|method)\s+(?:named|called)\s+`?([A-Za-z_][A-Za-z0-9_]*)", text) or \
        re.search(r"(?:function|method)\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\s*\(", text)
    return named.group(1) if named else None


def method_owner(text: str, entry: str | None) -> str | None:
    """``Solution`` when the problem gives LeetCode-style starter code with the entry point as its method."""
    if entry and re.search(rf"class\s+Solution\b[\s\S]*def\s+{re.escape(entry)}\s*\(\s*self\b", text):
        return "Solution"
    return None


def parse_examples(text: str, entry: str | None, language: str, owner: str | None = None) -> list[Test]:
    """The examples a problem statement carries, as tests: for a function, doctests (``>>> f(x)`` then the
    value), ``f(x) == y`` / ``f(x) => y`` lines and ``assert`` lines; for a program, Input/Output samples.
    A method's examples call it on a fresh instance of its class (``owner``)."""
    if entry and language == "python":
        tests = _dedupe(_python_examples(text, entry))
        if owner:
            for t in tests:
                if t.call and t.code.startswith("assert __atlas_eq("):
                    t.code = f"assert __atlas_eq({owner}().{t.call}, {t.expected})"
        return tests
    if entry and language == "javascript":
        return []
    return _dedupe(_stdin_samples(text))


def _python_examples(text: str, entry: str) -> list[Test]:
    tests: list[Test] = []
    lines = text.splitlines()
    params = _parameters(text, entry)
    headers = [n for n, line in enumerate(lines) if re.search(r"\bexamples?\b", line, re.IGNORECASE)]
    examples_from = headers[-1] if headers else -1
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(">>>"):
            expr = line[3:].strip()
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("..."):  # continuation lines
                expr += " " + lines[j].strip()[3:].strip()
                j += 1
            out = []
            while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(">>>") \
                    and '"""' not in lines[j] and "'''" not in lines[j]:
                out.append(lines[j].strip())
                j += 1
            if not out and (m := ARROW.match(expr)):  # ">>> f(x) == y" with nothing printed below
                expr, out = m.group("call"), [m.group("value")]
            test = _value_test(expr, " ".join(out), entry)
            if test is not None:
                tests.append(test)
            i = j
            continue
        if line.startswith("assert "):
            call, expected = split_assert(line)
            if call and call.split("(", 1)[0] == entry and _parses(line, "exec"):
                tests.append(Test("assert", "example", code=line, call=call, expected=expected))
        elif (m := ARROW.match(line)) and m.group("call").startswith(f"{entry}(") and \
                (m.group("op") != "=" or i > examples_from):  # "f(n) = ..." above the examples is a definition
            test = _value_test(m.group("call"), m.group("value"), entry)
            if test is not None:
                tests.append(test)
        elif (m := FOR_PARAM.match(line)) and params == [m.group("name")]:
            test = _value_test(f"{entry}({m.group('arg')})", m.group("value"), entry)
            if test is not None:
                tests.append(test)
        elif (m := INLINE_IO.match(line)) and m.group(1).lower() == "input" and i + 1 < len(lines):
            answer = INLINE_IO.match(lines[i + 1])
            if answer and answer.group(1).lower() == "output":  # "Input: arr = [1, 2], k = 3" / "Output: [2]"
                test = _value_test(f"{entry}({m.group(2)})", answer.group(2), entry)
                if test is not None:
                    tests.append(test)
        i += 1
    return tests


def _parameters(text: str, entry: str) -> list[str]:
    found = re.search(rf"def\s+{re.escape(entry)}\s*\((?P<args>[^)]*)\)", text)
    if not found:
        return []
    return [a.split(":")[0].split("=")[0].strip() for a in found.group("args").split(",") if a.strip()]


def _value_test(expr: str, value: str, entry: str) -> Test | None:
    """``expr`` should give ``value``: a test only when both are closed expressions (``fib(n)`` or a value
    naming a variable is prose, not an example). Both are re-printed from their AST, which drops comments."""
    value = {"true": "True", "false": "False", "null": "None"}.get(value.strip(), value.strip())
    call, expected = closed(expr, entry), closed(value, None)
    if call is None or expected is None or not call.startswith(f"{entry}("):
        return None
    return Test("assert", "example", code=f"assert __atlas_eq({call}, {expected})", call=call, expected=expected)


def closed(source: str, entry: str | None) -> str | None:
    """``source`` re-printed from its AST (comments dropped) when it is an expression naming nothing but
    builtins and ``entry``; None otherwise."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        return None if names - BUILTINS - {entry} else ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # deeply nested input is not an example
        return None


def split_assert(line: str) -> tuple[str | None, str | None]:
    """``assert f(x) == y`` → (``f(x)``, ``y``); ``assert f(x)`` → (``f(x)``, ``True``)."""
    try:
        node = ast.parse(line.strip()).body[0]
        return _assert_parts(node)
    except (SyntaxError, ValueError, IndexError, RecursionError, MemoryError):
        return None, None


def _assert_parts(node: ast.stmt) -> tuple[str | None, str | None]:
    if not isinstance(node, ast.Assert):
        return None, None
    test = node.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        left, right = test.left, test.comparators[0]
        if _is_call(right) and not _is_call(left):
            left, right = right, left
        if _is_call(left):
            return ast.unparse(left), ast.unparse(right)
    if _is_call(test):
        return ast.unparse(test), "True"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_call(test.operand):
        return ast.unparse(test.operand), "False"
    return None, None


def _is_call(node: ast.expr) -> bool:
    """A call of a named function: a user's, or one shadowing a builtin (MBPP's ``sum(10, 15)``) when no other
    call sits inside it (``len(f(x))`` tests ``f``, not ``len``)."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    nested = any(isinstance(n, ast.Call) for arg in [*node.args, *node.keywords] for n in ast.walk(arg))
    return node.func.id not in BUILTINS or not nested


def _parses(source: str, mode: str = "eval") -> bool:
    try:
        ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _stdin_samples(text: str) -> list[Test]:
    """``Input`` / ``Sample Input 1`` headers followed by a block, then the matching ``Output`` block; or
    ``Input: ...`` / ``Output: ...`` on single lines."""
    lines = text.splitlines()
    blocks: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        header = SAMPLE_HEADER.match(lines[i])
        inline = INLINE_IO.match(lines[i])
        if header:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            rows = []
            while j < len(lines) and lines[j].strip() and not SAMPLE_HEADER.match(lines[j]):
                rows.append(lines[j].strip().strip("`"))
                j += 1
            blocks.append((header.group(1).lower(), "\n".join(r for r in rows if r) + "\n"))
            i = j
            continue
        if inline:
            blocks.append((inline.group(1).lower(), inline.group(2).strip().strip("`") + "\n"))
        i += 1
    tests = []
    for (kind, body), (next_kind, next_body) in itertools.pairwise(blocks):
        if kind == "input" and next_kind == "output" and next_body.strip():
            tests.append(Test("stdin", "example", input=body, output=next_body))
    return tests


def _dedupe(tests: list[Test]) -> list[Test]:
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for t in tests:
        if (t.code, t.input, t.output) not in seen:
            seen.add((t.code, t.input, t.output))
            kept.append(t)
    return kept


CODING = re.compile(
    r"```|^\s*(?:def|class|fn|func|function|#include|import|from)\b|\bint\s+main\s*\(|"
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
