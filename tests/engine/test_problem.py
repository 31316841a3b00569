"""Turning a request into the engine's problem: user tests of each shape, entry points, languages, what is
refused and why."""

from __future__ import annotations

import time

import pytest

from atlas_engine.parse import build_problem, find_entry_point
from atlas_engine.problem import ProblemError, guess_language, is_coding_problem
from atlas_engine.problem import Test as ParsedTest  # imported as Test, pytest would try to collect it
from tests.engine.problems import request


def test_entry_point_from_the_tests_calls_first() -> None:
    test = ParsedTest("assert", "user", code="assert add(1, 2) == 3", call="add(1, 2)", expected="3")
    assert find_entry_point("def other(x):\n    pass\n", [test], "python") == "add"
    assert find_entry_point("def other(x):\n    pass\n", [ParsedTest("stdin", "user")], "python") == "other"


@pytest.mark.parametrize(("text", "entry"), [
    ("def _helper(x):\n    pass\n\ndef solve(xs):\n    pass\n\ndef _unused():\n    pass\n", "solve"),
    ("class Solution:\n    def maxSum(self, nums: List[int]) -> int:\n        ", "maxSum"),
    ("def _private(x):\n    pass\n", "_private"),
    ("Write a function.\nYour code should pass this test:\nassert remove_Occ(\"hello\",\"l\") == \"heo\"\n",
     "remove_Occ"),
    ("Check it.\nassert not is_odd(2)\n", "is_odd"),
    ("Write a function named `foo`.", "foo"),
    ("Write a method called bar: it returns 1.", "bar"),
    ("Add two numbers.", None),
    ("Write a function that adds two numbers.", None),
    ("Your code should pass this test:\nassert sum(10, 15) == 6\n", "sum"),  # MBPP/126 shadows a builtin
])
def test_python_entry_points(text: str, entry: str | None) -> None:
    assert find_entry_point(text, [], "python") == entry


def test_javascript_entry_points() -> None:
    text = "function helper(x) {\n}\nfunction sumTo(n) {\n  // TODO\n}\n"
    assert find_entry_point(text, [], "javascript") == "sumTo"
    assert find_entry_point("Write a JavaScript function named `sumTo`.", [], "javascript") == "sumTo"
    assert find_entry_point("def add(a, b):\n    pass\n", [], "javascript") is None


def test_a_function_named_in_a_sentence() -> None:
    assert find_entry_point("Write a function named `foo` that returns 1.", [], "python") == "foo"


# -- requests ----------------------------------------------------------------------------------------------

ADD = 'def add(a, b):\n    """\n    >>> add(2, 3)\n    5\n    """\n'


def test_user_tests_of_each_shape() -> None:
    tests = [{"assert": "assert 6 == add(2, 4)"}, {"input": "1 2\n", "output": "3\n"},
             {"args": [[1], None], "expected": 3}]
    problem = build_problem(request(ADD, tests=tests))
    asserted, stdin, functional, example = problem.tests
    assert (asserted.mode, asserted.source, asserted.call, asserted.expected) == ("assert", "user", "add(2, 4)", "6")
    assert (stdin.mode, stdin.input, stdin.output) == ("stdin", "1 2\n", "3\n")
    assert (functional.mode, functional.input, functional.output) == ("functional", "[1]\nnull\n", "3")
    assert (functional.call, functional.expected) == ("add(*[[1], None])", "3")
    assert (example.source, example.code) == ("example", "assert __atlas_eq(add(2, 3), 5)")
    assert (problem.entry_point, problem.reads_stdin) == ("add", False)
    assert (problem.count("user"), problem.count("example"), problem.count("self")) == (3, 1, 0)


def test_an_example_the_user_also_gave_counts_once_however_written() -> None:
    problem = build_problem(request(ADD, tests=[{"assert": "assert 5 == add(2, 3)"}]))
    assert [t.source for t in problem.tests] == ["user"]


def test_explicit_entry_point_wins() -> None:
    problem = build_problem(request(ADD, entry_point="plus", tests=[{"args": [1, 2], "expected": 3}]))
    assert problem.entry_point == "plus"
    assert problem.tests[0].call == "plus(*[1, 2])"
    assert problem.count("example") == 0  # the docstring calls add, not plus


def test_call_tests_need_an_entry_point() -> None:
    with pytest.raises(ProblemError) as caught:
        build_problem(request("Add two numbers.", tests=[{"args": [1, 2], "expected": 3}]))
    assert caught.value.field == "tests.0"
    assert "entry_point" in str(caught.value)


@pytest.mark.parametrize("language", ["c", "cpp", "rust", "bash"])
def test_assert_tests_only_in_python_and_javascript(language: str) -> None:
    tests = [{"input": "1\n", "output": "2\n"}, {"assert": "assert add(1, 2) == 3"}]
    with pytest.raises(ProblemError) as caught:
        build_problem(request("Add two numbers.", language=language, tests=tests))
    assert caught.value.field == "tests.1"
    assert language in str(caught.value)


def test_call_tests_only_in_python() -> None:
    with pytest.raises(ProblemError) as caught:
        build_problem(request("function add(a, b) {}", language="javascript", tests=[{"args": [1], "expected": 1}]))
    assert caught.value.field == "tests.0"


@pytest.mark.parametrize(("problem", "language", "test"), [
    ("Add two numbers.", "python", "assert len(add()) == 3"),  # no call to name the function
    ("Add two numbers.", "javascript", "assert.equal(add(1, 2), 3)"),  # JavaScript asserts are not parsed
])
def test_assert_tests_without_a_function_to_test(problem: str, language: str, test: str) -> None:
    with pytest.raises(ProblemError) as caught:
        build_problem(request(problem, language=language, tests=[{"assert": test}]))
    assert caught.value.field == "entry_point"


def test_javascript_asserts_take_the_function_from_the_text() -> None:
    problem = build_problem(request("function add(a, b) {\n}\n", language="javascript",
                                    tests=[{"assert": "assert.equal(add(1, 2), 3)"}]))
    assert (problem.entry_point, problem.reads_stdin, problem.tests[0].call) == ("add", False, None)


@pytest.mark.parametrize(("text", "test"), [
    ('Remove a character.\nYour code should pass this test:\nassert remove_Occ("hello","l") == "heo"\n',
     {"assert": 'assert remove_Occ("hello","l") == "heo"'}),
    ("Print twice n.\nInput: 3\nOutput: 6\n", {"input": "3\n", "output": "6\n"}),
])
def test_user_tests_given_again_as_examples_count_once(text: str, test: dict[str, str]) -> None:
    problem = build_problem(request(text, tests=[test]))
    assert (problem.count("user"), problem.count("example")) == (1, 0)


def test_examples_that_differ_from_user_tests_are_kept() -> None:
    problem = build_problem(request("Print twice n.\nInput: 3\nOutput: 6\n", tests=[{"input": "4\n", "output": "8\n"}]))
    assert [(t.source, t.input) for t in problem.tests] == [("user", "4\n"), ("example", "3\n")]


@pytest.mark.parametrize(("text", "language", "stdin"), [
    (ADD, "python", False),
    ("Read n, print 2n.\nInput: 3\nOutput: 6\n", "python", True),
    (ADD, "c", True),  # C always builds a whole program, even with a function in the text
    ("int add(int a, int b);", "cpp", True),
    ("function add(a, b) {}", "javascript", False),
])
def test_reads_stdin(text: str, language: str, stdin: bool) -> None:
    problem = build_problem(request(text, language=language))
    assert problem.reads_stdin is stdin


# -- chat messages ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "coding"), [
    ("Write a Python function that returns the n-th prime.", True),
    ("Here is my attempt:\n```\nx = 1\n```\nWhy does it fail?", True),
    ("def f(x):\n    return x\n", True),
    ("Implement a C program that reads two numbers and prints their sum.", True),
    ("Sample Input\n3\nSample Output\n6", True),
    ("What is the capital of France?", False),
    ("Tell me a joke", False),
    ("Summarise this paragraph: The river rose overnight and the village moved its market uphill.", False),
])
def test_is_coding_problem(text: str, coding: bool) -> None:
    assert is_coding_problem(text) is coding


@pytest.mark.parametrize(("text", "language"), [
    ("Write a C++ program that sorts a vector.", "cpp"),
    ("Solve it in cpp please", "cpp"),
    ("Write this in Rust.", "rust"),
    ("Write a JavaScript function that reverses a string.", "javascript"),
    ("A Node.js script that reads stdin.", "javascript"),
    ("Write a C program that prints hello.", "c"),
    ("Implement strlen in C.", "c"),
    ("Write a bash script that counts files.", "bash"),
    ("Write a Python function that reverses a list.", "python"),
    ("Reverse a list.", "python"),
    ("Count the vowels in the given text.", "python"),  # 'c' and 'in' inside words are no hint
])
def test_guess_language(text: str, language: str) -> None:
    assert guess_language(text) == language


def test_guess_language_node_of_a_linked_list() -> None:
    assert guess_language("Write a Python function that deletes a node from a linked list.") == "python"


# -- the real benchmarks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "\n" * 199_999 + "x", " \n" * 99_999 + "x", "class Solution " * 13_000, "def " * 50_000, "write " * 33_000,
    ">>> " * 50_000, "assert " * 28_000,
])
def test_a_long_problem_is_parsed_in_linear_time(text: str) -> None:
    """``^\\s*`` under MULTILINE backtracks over every following blank line: 200,000 newlines took minutes."""
    started = time.perf_counter()
    for language in ("python", "javascript"):
        build_problem(request(text, language=language))
        is_coding_problem(text)
        guess_language(text)
    assert time.perf_counter() - started < 10
