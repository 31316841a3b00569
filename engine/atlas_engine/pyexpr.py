"""Python expressions in problem statements and model answers: closed expressions (nothing but builtins and the
entry point), and the call and expected value of an ``assert``."""

from __future__ import annotations

import ast
import builtins

BUILTINS = set(dir(builtins))


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


def parses(source: str, mode: str = "eval") -> bool:
    try:
        ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


