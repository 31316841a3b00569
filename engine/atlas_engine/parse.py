"""A request as the engine's problem: the user's tests checked and typed, the entry point found, the problem's
own examples added (``examples``)."""

from __future__ import annotations

import json
import re

from atlas_engine.contracts import SolveRequest, TestIn
from atlas_engine.examples import parse_examples
from atlas_engine.problem import ASSERT_LANGUAGES, Problem, ProblemError, Test, Workspace
from atlas_engine.pyexpr import BUILTINS, split_assert


def build_problem(request: SolveRequest, workspace: Workspace | None = None) -> Problem:
    """The engine's problem for a request; raises ProblemError for tests that cannot run as given. A
    ``workspace``'s pytest files join the user's tests (the project's own tests)."""
    language = request.language
    user = [_user_test(t, i, language) for i, t in enumerate(request.tests)]
    if workspace is not None and workspace.tests and language != "python":
        raise ProblemError("project.tests", "a project's own tests run with pytest, so only in Python")
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
    project = [Test("pytest", "user", code=code) for _, code in workspace.tests] if workspace else []
    problem = Problem(text=request.problem, language=language, entry_point=entry, tests=user + project + examples,
                      method_of=owner, files=dict(workspace.files) if workspace else {})
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
        defs: list[str] = re.findall(r"^[ \t]*def[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\(", text, re.MULTILINE)
        public = [d for d in defs if not d.startswith("_")] or defs
        if public:
            return public[-1]
        for line in text.splitlines():
            call, _ = split_assert(line.strip()) if line.strip().startswith("assert ") else (None, None)
            if call:
                return call.split("(", 1)[0]
        doctest = re.search(r"^[ \t]*>>>[ \t]*([A-Za-z_][A-Za-z0-9_]*)\(", text, re.MULTILINE)
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
    owner = re.search(r"class[ \t]+Solution\b", text) if entry else None
    if entry and owner and re.search(rf"def[ \t]+{re.escape(entry)}[ \t]*\([ \t]*self\b", text[owner.end():]):
        return "Solution"
    return None


