"""LiveCodeBench's comparison rules, case by case."""

from __future__ import annotations

import pytest

from atlas_sandbox.compare import functional_matches, stdin_matches


@pytest.mark.parametrize(("got", "expected", "same"), [
    ("1 2 3\n", "1 2 3", True),
    ("1 2 3   \n\n", "  1 2 3", True),  # the whole output is stripped, then each line
    ("a\r\nb", "a\nb", True),
    ("1.0\n", "1", True),  # decimals compare by value
    ("1e3", "1000", True),
    ("0.30000000000000004", "0.3", False),  # exact decimals: no tolerance
    ("1 2", "1  2", True),  # token-wise after the decimal parse
    ("yes", "Yes", False),
    ("1\n2", "1 2", False),  # line structure matters
    ("1\n\n2", "1\n2", False),  # an inner blank line is a line
    ("abc 1.0", "abc 1", False),  # a line with a non-number token must match exactly
    ("", "", True),
    ("-0", "0", True),
    ("NaN", "NaN", True),  # equal strings match before any parse
])
def test_stdin_rules(got: str, expected: str, same: bool) -> None:
    assert stdin_matches(got, expected) is same


@pytest.mark.parametrize(("got", "expected", "same"), [
    ("[1, 2]", "[1, 2]", True),
    ("[[1, 2], [3]]", "[[1,2],[3]]", True),  # tuples reach here as lists
    ("1.0", "1", True),  # Python's == : 1.0 == 1
    ("true", "true", True),
    ("\"a\"", "\"a\"", True),
    ("[1, 2]", "[2, 1]", False),
    ("not json", "1", False),
    ("{\"a\": [1]}", "{\"a\": [1]}", True),
])
def test_functional_rules(got: str, expected: str, same: bool) -> None:
    assert functional_matches(got, expected) is same
