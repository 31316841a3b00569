"""Turning a request and the examples in its text into tests: parsers, entry points, language hints, and the
real HumanEval and MBPP statements as a check that no parsed example rejects a correct program."""

from __future__ import annotations

import functools
import gzip
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from atlas_rag.problem import (
    EQ_HELPER,
    ProblemError,
    build_problem,
    find_entry_point,
    guess_language,
    is_coding_problem,
    method_owner,
    parse_examples,
)
from atlas_rag.problem import Test as ParsedTest  # imported as Test, pytest would try to collect it
from atlas_rag.schemas import SolveRequest

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

DOCSTRING = '''from typing import List


def running_sum(xs: List[int], start: int = 0) -> List[int]:
    """ The running sums of xs, from start.
    >>> running_sum([1, 2, 3])
    [1,
     3,
     6]
    >>> running_sum([1, 2],
    ...             start=10)
    [11, 13]
    >>> running_sum([])
    []
    """
'''
RUNNING_SUM = """
def running_sum(xs, start=0):
    out = []
    for x in xs:
        start += x
        out.append(start)
    return out
"""


def test_doctests_with_continuations_and_multiline_values() -> None:
    tests = parse_examples(DOCSTRING, "running_sum", "python")
    assert [(t.mode, t.source, t.code) for t in tests] == [
        ("assert", "example", "assert __atlas_eq(running_sum([1, 2, 3]), [1, 3, 6])"),
        ("assert", "example", "assert __atlas_eq(running_sum([1, 2], start=10), [11, 13])"),
        ("assert", "example", "assert __atlas_eq(running_sum([]), [])"),
    ]
    assert (tests[0].call, tests[0].expected) == ("running_sum([1, 2, 3])", "[1, 3, 6]")


def test_doctests_accept_a_correct_program_and_reject_a_wrong_one() -> None:
    tests = parse_examples(DOCSTRING, "running_sum", "python")
    assert failures(RUNNING_SUM, tests) == []
    wrong = "def running_sum(xs, start=0):\n    return [start + x for x in xs]\n"
    with pytest.raises(AssertionError):
        run(EQ_HELPER, wrong, tests[0].code)


def test_doctest_values_compare_like_doctest_reads_them() -> None:
    text = ">>> stats([0.1, 0.2])\n(0.15, 2)\n"
    tests = parse_examples(text, "stats", "python")
    assert failures("def stats(xs):\n    return [sum(xs) / len(xs), len(xs)]\n", tests) == []  # 0.15000000000000002
    assert len(failures("def stats(xs):\n    return [0.1501, len(xs)]\n", tests)) == 1


@pytest.mark.parametrize("line", [
    "square(3) ==> 9",
    "square(3) => 9",
    "square(3) ➞ 9",
    "square(3) == 9",
    "square(3) → 9",
    "square(3) -> 9",
    "    square(3) should return 9.",
    "square(3) returns 9,",
])
def test_value_lines(line: str) -> None:
    tests = parse_examples(f"Square a number.\nFor example:\n{line}\n", "square", "python")
    assert [t.code for t in tests] == ["assert __atlas_eq(square(3), 9)"]
    assert failures("def square(x):\n    return x * x\n", tests) == []


def test_mbpp_assert_line_is_kept_verbatim() -> None:
    text = ('Write a python function to remove first and last occurrence of a given character from the string.\n'
            'Your code should pass this test:\nassert remove_Occ("hello","l") == "heo"\n')
    [test] = parse_examples(text, "remove_Occ", "python")
    assert (test.mode, test.code) == ("assert", 'assert remove_Occ("hello","l") == "heo"')
    assert (test.call, test.expected) == ("remove_Occ('hello', 'l')", "'heo'")


@pytest.mark.parametrize("text", [
    ">>> helper(3)\n9\n",
    "helper(3) ==> 9\n",
    "assert helper(3) == 9\n",
    ">>> print(square(3))\n9\n",  # prints what square returns: a call to print, not to square
    "squares(3) == [0, 1, 4]\n",  # a name that starts like the entry point's
])
def test_calls_to_other_functions_are_not_tests(text: str) -> None:
    assert parse_examples(text, "square", "python") == []


@pytest.mark.parametrize("text", [
    ">>> square(3)\nTraceback (most recent call last):\n  ...\nValueError: no\n",
    ">>> square(3)\n<Square object at 0x7f>\n",
    "square(3) returns the square of three\n",
    ">>> square(3\n9\n",  # the call itself does not parse
    "assert square(3) == (9\n",
    ">>> square(3)\n\n",  # no value at all
])
def test_unparsable_examples_are_skipped(text: str) -> None:
    assert parse_examples(text, "square", "python") == []


def test_duplicate_examples_count_once() -> None:
    text = ">>> square(3)\n9\n\nsquare(3) ==> 9\n>>> square(3)\n9\n\nassert square(2) == 4\nassert square(2) == 4\n"
    codes = [t.code for t in parse_examples(text, "square", "python")]
    assert codes == ["assert __atlas_eq(square(3), 9)", "assert square(2) == 4"]


def test_javascript_functions_take_no_examples() -> None:
    assert parse_examples("add(1, 2) == 3\nInput: 1 2\nOutput: 3\n", "add", "javascript") == []


# A real-looking AtCoder statement, as LiveCodeBench carries it.
ATCODER = """You are given N integers. Print their sum.

Constraints

- 1 \\leq N \\leq 100

Sample Input 1

3
1 2 3

Sample Output 1

6

The sum is 1 + 2 + 3 = 6.

Sample Input 2

1
5

Sample Output 2

5
"""


@pytest.mark.parametrize("language", ["python", "c", "rust"])
def test_numbered_samples(language: str) -> None:
    tests = parse_examples(ATCODER, None, language)
    assert [(t.mode, t.source, t.input, t.output) for t in tests] == [
        ("stdin", "example", "3\n1 2 3\n", "6\n"),
        ("stdin", "example", "1\n5\n", "5\n"),
    ]


def test_plain_headers_and_inline_samples() -> None:
    plain = "Read n and print 2n.\n\nInput\n\n3\n\nOutput\n\n6\n"
    inline = "Read n and print 2n.\nInput: 3\nOutput: `6`\n\nInput: 4\nOutput: 8\n"
    assert [(t.input, t.output) for t in parse_examples(plain, None, "cpp")] == [("3\n", "6\n")]
    assert [(t.input, t.output) for t in parse_examples(inline, None, "python")] == [("3\n", "6\n"), ("4\n", "8\n")]


def test_samples_need_both_halves_and_count_once() -> None:
    assert parse_examples("Output: 6\nInput: 3\n", None, "python") == []
    assert len(parse_examples("Input: 3\nOutput: 6\nInput: 3\nOutput: 6\n", None, "python")) == 1
    # With an entry point a C problem is still a program: samples, not calls.
    assert [t.mode for t in parse_examples("Input: 3\nOutput: 6\n", "twice", "c")] == ["stdin"]


@pytest.mark.parametrize(("text", "codes"), [
    ("def digits(lst):\n    For lst = [1,2] the output should be 3.\n    For lst = [] the output should be 0\n",
     ["assert __atlas_eq(digits([1, 2]), 3)", "assert __atlas_eq(digits([]), 0)"]),
    ("def digits(lst, base):\n    For lst = [1,2] the output should be 3\n", []),  # which parameter is lst?
    ("Example 1:\nInput: nums = [1,2,3], k = 2\nOutput: 6\n", ["assert __atlas_eq(digits(nums=[1, 2, 3], k=2), 6)"]),
    ("Examples:\n- digits(1) => 2\n* digits(2) => null\n", ["assert __atlas_eq(digits(1), 2)",
                                                           "assert __atlas_eq(digits(2), None)"]),
    ("digits(n) = digits(n - 1) + 1\ndigits(0) = 0\nExamples:\ndigits(4) = 4\n", ["assert __atlas_eq(digits(4), 4)"]),
    (">>> digits(2) == 2\nTrue\n>>> digits(3) == 3\n", ["assert __atlas_eq(digits(2) == 2, True)",
                                                       "assert __atlas_eq(digits(3), 3)"]),
])
def test_other_example_shapes(text: str, codes: list[str]) -> None:
    assert [t.code for t in parse_examples(text, "digits", "python")] == codes


# A LeetCode statement as LiveCodeBench gives it (question, then the starter code); 180 of its 181 functional
# problems have such examples.
LEETCODE = """You are given an integer array nums. Return the sum of its elements.

Example 1:

Input: nums = [1,2,3]
Output: 6

class Solution:
    def arraySum(self, nums: List[int]) -> int:
        """


def test_leetcode_examples_accept_a_solution_class() -> None:
    entry = find_entry_point(LEETCODE, [], "python")
    tests = parse_examples(LEETCODE, entry, "python", method_owner(LEETCODE, entry))
    solution = "class Solution:\n    def arraySum(self, nums):\n        return sum(nums)\n"
    assert (entry, failures(solution, tests)) == ("arraySum", [])


# Each line once became a test that no program passes (NameError, SyntaxError, TypeError), so the engine
# rejected correct code. The first four come from HumanEval/80, 76, 46 and 123.
@pytest.mark.parametrize(("line", "returns"), [
    ("f(abc) => True", "True"),  # HumanEval/80: an unquoted string argument becomes a free name
    ("f(1) => true", "True"),  # HumanEval/76: JavaScript's true is a free name in Python
    ("f(n) -> f(n-1) + 1", "x"),  # HumanEval/46, /63: a recurrence, not an example
    ("f(5) returns [1, 5] # the odd ones", "[1, 5]"),  # HumanEval/123: the comment swallows the closing ')'
    ("f(1) == 2, f(2) == 3", "x + 1"),  # two on a line: the greedy call gives __atlas_eq three arguments
], ids=["free-name-arg", "lowercase-true", "recurrence", "trailing-comment", "two-on-a-line"])
def test_parsed_examples_never_reject_a_correct_program(line: str, returns: str) -> None:
    tests = parse_examples(f"Examples:\n{line}\n", "f", "python")
    assert failures(f"def f(x):\n    return {returns}\n", tests) == []


# -- the equality helper the example asserts use ------------------------------------------------------------

@pytest.mark.parametrize(("got", "expected", "equal"), [
    ("0.1 + 0.2", "0.3", True),
    ("1e9 + 1e-3", "1e9", True),  # relative tolerance for large values
    ("0.5", "0.5001", False),
    ("1", "1.0", True),
    ("(1, [2, (3.0000000001,)])", "[1, (2, [3])]", True),  # tuples and lists alike, nested
    ("(1, 2)", "[1, 2, 3]", False),
    ("'1.0'", "1.0", False),  # a str is no float, and no TypeError escapes
    ("None", "0.0", False),
    ("{'a': (1,)}", "{'a': (1,)}", True),
])
def test_eq_helper(got: str, expected: str, equal: bool) -> None:
    program = f"assert __atlas_eq({got}, {expected}) is {equal}"
    run(EQ_HELPER, program)


# -- entry points ------------------------------------------------------------------------------------------

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

@functools.cache
def humaneval() -> dict[str, dict[str, Any]]:
    path = DATASETS / "humaneval" / "HumanEval.jsonl.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {row["task_id"]: row for row in rows}


@functools.cache
def mbpp() -> list[dict[str, Any]]:
    path = DATASETS / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if 11 <= row["task_id"] <= 510]  # the test split


# The docstring itself is wrong: the canonical solution is right and fails the example.
HUMANEVAL_QUIRKS = {
    "HumanEval/47": "median([-10, 4, 6, 1000, 10, 20]) is 8.0, the docstring says 15.0",
    "HumanEval/116": "sort_array([1, 5, 2, 3, 4]) is [1, 2, 4, 3, 5] (by count of ones), the docstring says sorted",
    "HumanEval/148": 'bf("Earth", "Mercury") is ("Venus",), the docstring writes ("Venus"), a str',
}


def humaneval_failures(task_id: str) -> list[str]:
    row = humaneval()[task_id]
    tests = parse_examples(row["prompt"], row["entry_point"], "python")
    return failures(row["prompt"] + row["canonical_solution"], tests)


@pytest.mark.parametrize(("task_id", "codes"), [
    ("HumanEval/0", ["assert __atlas_eq(has_close_elements([1.0, 2.0, 3.0], 0.5), False)",
                     "assert __atlas_eq(has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3), True)"]),
    ("HumanEval/2", ["assert __atlas_eq(truncate_number(3.5), 0.5)"]),
])
def test_humaneval_docstring_examples(task_id: str, codes: list[str]) -> None:
    row = humaneval()[task_id]
    assert [t.code for t in parse_examples(row["prompt"], row["entry_point"], "python")] == codes
    assert humaneval_failures(task_id) == []


def test_humaneval_examples_reject_a_wrong_solution() -> None:
    row = humaneval()["HumanEval/2"]
    tests = parse_examples(row["prompt"], row["entry_point"], "python")
    assert failures(row["prompt"] + "    return number\n", tests) != []


def test_humaneval_entry_points() -> None:
    found = {tid: find_entry_point(row["prompt"], [], "python") for tid, row in humaneval().items()}
    assert found == {tid: row["entry_point"] for tid, row in humaneval().items()}


def test_every_humaneval_example_passes_the_canonical_solution() -> None:
    with_examples = 0
    failed: dict[str, list[str]] = {}
    for task_id, row in humaneval().items():
        with_examples += bool(parse_examples(row["prompt"], row["entry_point"], "python"))
        if task_id in HUMANEVAL_QUIRKS:
            continue
        if f := humaneval_failures(task_id):
            failed[task_id] = f
    assert failed == {}
    assert with_examples >= 140  # 148 of the 164 problems when this was written: a parser that finds nothing fails


def mbpp_text(row: dict[str, Any]) -> str:
    return f"{row['text']}\nYour code should pass this test:\n{row['test_list'][0]}\n"


def test_every_mbpp_first_test_is_found_and_passes() -> None:
    problems: dict[int, str] = {}
    for row in mbpp():
        entry = find_entry_point(mbpp_text(row), [], "python")
        tests = parse_examples(mbpp_text(row), entry, "python")
        if entry is None or not re.search(rf"^def\s+{entry}\s*\(", row["code"], re.MULTILINE) or len(tests) != 1:
            problems[row["task_id"]] = f"entry {entry}, {len(tests)} tests"
        elif f := failures(row["code"] + "\n" + row["test_setup_code"], tests):
            problems[row["task_id"]] = f[0]
    assert problems == {}
    assert len(mbpp()) == 500
