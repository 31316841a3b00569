"""Output comparison with LiveCodeBench's rules, so a verdict here equals the official harness's verdict."""

from __future__ import annotations

import hashlib
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


def _canonical(number: Decimal) -> str:
    """One spelling per value, exactly (no rounding to a context's precision): "1.0", "1" and "1e0" give "1e0",
    "-0" and "0.00" give "0"."""
    if number.is_infinite():
        return "-inf" if number.is_signed() else "inf"
    sign, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):  # a NaN: the caller keeps such lines as text
        return str(number)
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    if kept == [0]:
        return "0"
    return f"{'-' if sign else ''}{''.join(map(str, kept))}e{exponent}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def stdin_digest(got: str) -> str:
    """A digest equal for two outputs exactly when ``stdin_matches`` finds them equal (short of hash
    collisions): the stripped lines, each either its canonical decimals or, when a token is not a decimal
    (or is a NaN, which equals nothing but its own text), the line itself."""
    lines: list[Any] = []
    for line in _lines(got):
        numbers = _decimals(line)
        if numbers is None or any(n.is_nan() for n in numbers):
            lines.append(line)
        else:
            lines.append([_canonical(n) for n in numbers])
    return _digest(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _number(value: Any) -> Any:
    """Python's == sees True, 1 and 1.0 as equal: one form for each (an integral float becomes its int)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def functional_digest(got_json: str) -> str:
    """A digest equal for two returned values exactly when ``functional_matches`` finds them equal (NaN aside):
    the JSON value, tuples as lists, numbers in one form per value, dict keys sorted."""
    try:
        value = _number(_plain(json.loads(got_json)))
    except ValueError:
        return _digest(["not JSON", got_json])
    return _digest(value)


def functional_matches(got_json: str, expected_json: str) -> bool:
    """LiveCodeBench call-based grading: ``prediction == expected`` after tuples become lists (the harness
    inside the sandbox already returns JSON, in which tuples are lists)."""
    try:
        return bool(_plain(json.loads(got_json)) == _plain(json.loads(expected_json)))
    except ValueError:
        return False
