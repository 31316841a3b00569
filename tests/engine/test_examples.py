"""The examples in a problem's text as tests: doctests, value lines, asserts, LeetCode and stdin samples, and the
real HumanEval, MBPP and LiveCodeBench statements as a check that parsed examples accept correct programs."""

from __future__ import annotations

import time

import pytest

from atlas_engine.examples import parse_examples
from atlas_engine.parse import find_entry_point, method_owner
from atlas_engine.problem import EQ_HELPER
from tests.engine.problems import failures, run

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


CODEFORCES = """Output

For each test case, output "YES" if you can, or "NO" otherwise.Sample Input 1:
3

abc

acb

bca



Sample Output 1:

YES
YES
NO


Note

In the first test case, nothing changes.
"""
FORMAT_SECTIONS = """Input

The input is given from Standard Input in the following format:
N
S

Output

If the winner is Takahashi, print T; otherwise print A.

Sample Input 1

5
TTAAT

Sample Output 1

T

Takahashi won three games, and Aoki won two.
"""
FENCED = "Print the input reversed.\n\n### Example Input\n```\na b\n\nc\n```\n### Example Output\n```\nc\n\nb a\n```\n"


def test_a_header_glued_to_prose_and_rows_spaced_by_blank_lines() -> None:
    """Codeforces statements converted from HTML: the header ends the previous sentence and every row is
    followed by a blank line; the real test has none."""
    tests = parse_examples(CODEFORCES, None, "python")
    assert [(t.input, t.output) for t in tests] == [("3\nabc\nacb\nbca\n", "YES\nYES\nNO\n")]


def test_format_sections_are_not_samples_and_explanations_end_an_output() -> None:
    tests = parse_examples(FORMAT_SECTIONS, None, "cpp")
    assert [(t.input, t.output) for t in tests] == [("5\nTTAAT\n", "T\n")]


def test_fenced_sample_blocks_are_taken_as_they_are() -> None:
    assert [(t.input, t.output) for t in parse_examples(FENCED, None, "rust")] == [("a b\n\nc\n", "c\n\nb a\n")]


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


@pytest.mark.parametrize("text", [
    " " * 200_000 + "x", "Sample Input 1:" + " " * 200_000, "Sample Input 1\n" + "word " * 40_000 + ".\n",
    "$" * 200_000, ">>> f(" + "1," * 100_000 + ")\n", "f() = x" + " " * 199_000 + "y", "f() = " + " " * 199_000,
    "for x = a" + " " * 199_000 + "b", ("f() = x" + " " * 3_900 + "y\n") * 50,
    ("Sample Input 1" + " " * 300 + "\n") * 500,
])
def test_long_adversarial_lines_parse_in_linear_time(text: str) -> None:
    """A problem is up to 200,000 characters of anyone's text: no pattern may backtrack over a long line (the
    old value pattern took 80 s on a 4,000-character line). The bound is generous; the failure is minutes."""
    started = time.perf_counter()
    for entry in (None, "f"):
        parse_examples(text, entry, "python")
    assert time.perf_counter() - started < 10


def test_examples_are_capped() -> None:
    text = "".join(f">>> f({n})\n{n}\n" for n in range(200))
    assert len(parse_examples(text, "f", "python")) == 50
