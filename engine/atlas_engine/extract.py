"""Getting the program out of what a model wrote: reasoning blocks, markdown fences, prose around code, a
truncated last fence, and (for base models) a continuation that runs past the function."""

from __future__ import annotations

import ast
import re

THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)
FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
TAGS = {
    "python": {"python", "py", "python3"},
    "javascript": {"javascript", "js", "node", "nodejs"},
    "c": {"c", "h"},
    "cpp": {"cpp", "c++", "cc", "cxx", "hpp"},
    "rust": {"rust", "rs"},
    "bash": {"bash", "sh", "shell"},
}
CODE_START = {
    "python": re.compile(r"^(def |class |import |from |@|async def |[A-Za-z_][A-Za-z0-9_]* *=)"),
    "javascript": re.compile(r"^(function |const |let |var |class |'use strict'|\"use strict\"|module\.)"),
    "c": re.compile(r"^(#include|int |void |char |long |double |float |static |struct |typedef )"),
    "cpp": re.compile(r"^(#include|int |void |using |template|class |struct |std::|long |double |static )"),
    "rust": re.compile(r"^(use |fn |struct |impl |pub |mod |const |static )"),
    "bash": re.compile(r"^(#!|[A-Za-z_]+=|read |echo |for |while |if )"),
}
# Where a base model's continuation of a function has gone past it (the usual HumanEval stop sequences).
COMPLETION_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ", "\n```"]


def strip_reasoning(text: str) -> str:
    """Drop ``<think>`` blocks (and an unclosed one to the end)."""
    return THINK.sub("", text)


def extract_code(text: str, language: str, entry_point: str | None = None) -> str | None:
    """The program in a chat answer, or None when there is none.

    Fenced blocks win: one tagged with the language (or untagged), preferring the one that defines the entry
    point, else the longest. Without fences, the text from its first line that looks like code."""
    text = strip_reasoning(text).replace("\r\n", "\n")
    blocks = [(m.group(1).lower(), m.group(2), m.group(0).endswith("```")) for m in FENCE.finditer(text)]
    fitting = [(body, closed) for tag, body, closed in blocks if not tag or tag in TAGS.get(language, {language})]
    if fitting:
        if entry_point:
            defining = [b for b in fitting if _defines(b[0], entry_point, language)]
            fitting = defining or fitting
        code, closed = max(fitting, key=lambda b: len(b[0]))
    elif blocks:
        return None  # only blocks in other languages: no answer in this one
    else:
        code, closed = _unfenced(text, language), False
    code = code.strip("\n")
    if language == "python" and not closed:  # prose after unfenced code, or a fence cut off mid-line
        code = _parseable_prefix(code)
    return code if code.strip() else None


def complete_code(prefix: str, continuation: str) -> str:
    """A base model's continuation of ``prefix`` (a signature and docstring), cut where it leaves the function."""
    cut = len(continuation)
    for stop in COMPLETION_STOPS:
        at = continuation.find(stop)
        if at != -1:
            cut = min(cut, at)
    return prefix + continuation[:cut].rstrip() + "\n"


def _defines(code: str, name: str, language: str) -> bool:
    if language == "python":
        return re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE) is not None
    return re.search(rf"\b{re.escape(name)}\s*\(", code) is not None


def _unfenced(text: str, language: str) -> str:
    lines = text.split("\n")
    start = CODE_START.get(language)
    for i, line in enumerate(lines):
        if start is not None and start.match(line):
            return "\n".join(lines[i:])
    return text if language != "python" else ""


def _parseable_prefix(code: str) -> str:
    """Python: drop trailing lines (prose after the code) until the rest parses; the whole text if none does,
    so the sandbox reports the SyntaxError."""
    lines = code.split("\n")
    for end in range(len(lines), max(0, len(lines) - 40), -1):
        candidate = "\n".join(lines[:end])
        try:
            ast.parse(candidate)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        return candidate
    return code


def sanitize_python(code: str, keep_main: bool, entry: str | None = None) -> str:
    """What a function answer must not run when the tests import it: asserts, ``if __name__ == "__main__"``
    blocks, and top-level calls of ``print``, ``input``, ``main`` or the entry point itself (models add wrong
    examples, or read stdin there). Module-level setup (tables filled by loops, ``sys.setrecursionlimit``)
    stays. Programs that read stdin (``keep_main``) and code that does not parse are left as they are."""
    if keep_main:
        return code
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return code
    lines = code.split("\n")
    drop: set[int] = set()
    keep: set[int] = set()  # a line shared with a kept statement ("import math; print(1)") stays
    for node in tree.body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        (drop if _runs_something(node, entry) else keep).update(range(start, node.end_lineno or node.lineno))
    drop -= keep
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n") + "\n"


def add_imports(code: str, problem: str) -> str:
    """The problem's own top-level imports (``from typing import List`` above a signature), put back when a
    chat answer dropped them."""
    wanted = [line for line in problem.splitlines() if re.match(r"^(?:import |from \S+ import )", line)]
    missing = [line for line in wanted if line not in code]
    if not missing:
        return code
    lines = code.split("\n")
    at = max((i + 1 for i, line in enumerate(lines) if line.startswith("from __future__ import")), default=0)
    return "\n".join([*lines[:at], *missing, *lines[at:]])


def _runs_something(node: ast.stmt, entry: str | None) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in {"print", "input", "main", "pprint", entry}
    if isinstance(node, ast.If):
        test = ast.unparse(node.test).replace("'", '"')
        return "__name__" in test and "__main__" in test
    return False


def normalise(code: str, language: str) -> str:
    """The form two candidates are duplicates in: Python's AST (comments, blank lines, quotes and formatting
    ignored), else the code with whitespace runs collapsed."""
    if language == "python":
        try:
            return ast.dump(ast.parse(code))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
    return " ".join(code.split())
