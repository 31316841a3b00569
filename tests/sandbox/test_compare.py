"""LiveCodeBench's comparison rules, case by case, and the output digests of collect_outputs, which must agree
with them: two outputs get the same digest exactly when the comparison finds them equal."""

from __future__ import annotations

import pytest

from atlas_sandbox.compare import functional_digest, functional_matches, stdin_digest, stdin_matches


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
    ("nan 1", "nan 1.0", False),  # a NaN equals nothing, so its line only matches itself
    ("inf", "Infinity", True),
    ("1.0000000000000000000000000000001", "1", False),  # exact, beyond any decimal context's precision
    ("0.50 -0.0", "5e-1 0", True),
    ("1\n2\n\n\n", "1.0\n2", True),  # trailing blank lines are stripped with the whole output
])
def test_stdin_rules(got: str, expected: str, same: bool) -> None:
    assert stdin_matches(got, expected) is same
    assert (stdin_digest(got) == stdin_digest(expected)) is same


@pytest.mark.parametrize(("got", "expected", "same"), [
    ("[1, 2]", "[1, 2]", True),
    ("[[1, 2], [3]]", "[[1,2],[3]]", True),  # tuples reach here as lists
    ("1.0", "1", True),  # Python's == : 1.0 == 1
    ("true", "true", True),
    ("\"a\"", "\"a\"", True),
    ("[1, 2]", "[2, 1]", False),
    ("not json", "1", False),
    ("{\"a\": [1]}", "{\"a\": [1]}", True),
    ("true", "1", True),  # True == 1
    ("{\"a\": 1, \"b\": 2.0}", "{\"b\": 2, \"a\": 1}", True),
    ("[1, 2.5]", "[1, 2]", False),
    ("\"1\"", "1", False),
])
def test_functional_rules(got: str, expected: str, same: bool) -> None:
    assert functional_matches(got, expected) is same
    if got != "not json":  # the harness always returns JSON; no digest stands for "equals nothing"
        assert (functional_digest(got) == functional_digest(expected)) is same


def test_digests_are_24_hex_characters() -> None:
    for digest in (stdin_digest("1 2\n"), functional_digest("[1]")):
        assert len(digest) == 24 and int(digest, 16) >= 0
