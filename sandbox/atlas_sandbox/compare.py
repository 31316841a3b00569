"""Output comparison with LiveCodeBench's rules, so a verdict here equals the official harness's verdict."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

# What a program that ran out of memory writes to stderr (Python, C++, Rust, glibc, V8); the service and the
# stdin driver (which gets this file as atlas_compare) both classify by it.
MEMORY_WORDS = (b"MemoryError", b"std::bad_alloc", b"memory allocation of", b"out of memory",
                b"Cannot allocate memory")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def _equal(a: list[Decimal], b: list[Decimal]) -> bool:
    try:
        return a == b
    except InvalidOperation:  # a signalling NaN ("sNaN") raises on comparison; it equals nothing
        return False


def stdin_matches(got: str, expected: str) -> bool:
    """LiveCodeBench ``grade_stdio``: strip the whole output, then compare line by line after strip; unequal
    lines still match when every whitespace-separated token of both parses as a decimal and the decimals are
    equal (``1.0`` matches ``1``; ``1e3`` matches ``1000``)."""
    got_lines, want_lines = _lines(got), _lines(expected)
    if len(got_lines) != len(want_lines):
        return False
    for mine, theirs in zip(got_lines, want_lines, strict=True):
        if mine == theirs:
            continue
        a, b = _decimals(mine), _decimals(theirs)
        if a is None or b is None or not _equal(a, b):
            return False
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def functional_matches(got_json: str, expected_json: str) -> bool:
    """LiveCodeBench call-based grading: ``prediction == expected`` after tuples become lists (the harness
    inside the sandbox already returns JSON, in which tuples are lists)."""
    try:
        return bool(_plain(json.loads(got_json)) == _plain(json.loads(expected_json)))
    except ValueError:
        return False
