"""Getting the program out of model output: fences, reasoning, prose, truncation, base-model continuations,
and the clean-ups applied before a candidate runs."""

from __future__ import annotations

import ast
import sys

import pytest

from atlas_engine.extract import add_imports, complete_code, extract_code, normalise, sanitize_python, strip_reasoning

F = "def f(x):\n    return x + 1"
HELPER = "def helper(values):\n    # a long helper that the answer does not need at all\n    return sorted(values)"


def fence(body: str, tag: str = "python") -> str:
    return f"```{tag}\n{body}\n```"


# -- extract_code ------------------------------------------------------------------------------------------

def test_fenced_code_with_prose_around() -> None:
    text = f"Sure! Here is the function:\n\n{fence(F)}\n\nIt adds one. Let me know if you need more."
    assert extract_code(text, "python") == F


def test_the_block_defining_the_entry_point_wins() -> None:
    text = f"{fence(HELPER)}\nThen:\n{fence(F)}"
    assert len(HELPER) > len(F)
    assert extract_code(text, "python", "f") == F
    assert extract_code(text, "python", "g") == HELPER  # no block defines g: the longest


def test_the_longest_block_without_an_entry_point() -> None:
    text = f"{fence('x = 1')}\n{fence(HELPER, '')}\n{fence(F, 'py')}"
    assert extract_code(text, "python") == HELPER


def test_blocks_in_other_languages_are_ignored() -> None:
    install = "pip install numpy  # a long shell line, longer than the function itself, on purpose"
    text = f"Install first:\n{fence(install, 'bash')}\nThen:\n{fence(F)}\nOutput:\n{fence('2', 'text')}"
    assert extract_code(text, "python") == F


def test_only_blocks_in_other_languages_is_no_answer() -> None:
    text = f"In JavaScript:\n{fence('function f(x) { return x + 1; }', 'js')}\n\ndef f(x): is how Python does it"
    assert extract_code(text, "python") is None


@pytest.mark.parametrize("text", [
    "<think>\nI could write ```python\ndef f(x):\n    return x - 1  # no, wrong, longer draft\n```\n</think>",
    "<think>a</think>\n<think>b ```python\ndef f(x):\n    return 'a wrong draft, longer'\n```</think>\n",
])
def test_reasoning_is_not_the_answer(text: str) -> None:
    assert extract_code(text + f"\nAnswer:\n{fence(F)}", "python", "f") == F


def test_an_unclosed_reasoning_block_runs_to_the_end() -> None:
    assert extract_code(f"<think>Maybe:\n{fence(F)}\nand then I ran out of tokens", "python") is None
    assert strip_reasoning("before<think>a</think> middle <think>b\nc") == "before middle "


def test_a_truncated_last_fence() -> None:
    text = f"Here:\n```python\n{F}\n\n\n"
    assert extract_code(text, "python") == F


def test_unfenced_python_starts_at_the_code_and_drops_trailing_prose() -> None:
    text = f"Here is my solution.\nIt is simple.\nimport math\n\n{F}\n\nThis runs in O(1) time. Hope it helps!"
    assert (extract_code(text, "python") or "").rstrip("\n") == f"import math\n\n{F}"


@pytest.mark.parametrize("text", ["The answer is 42.", "", "   \n\n", "<think>only thinking</think>"])
def test_no_python_at_all(text: str) -> None:
    assert extract_code(text, "python") is None


def test_windows_line_endings() -> None:
    assert extract_code(fence(F).replace("\n", "\r\n"), "python") == F


MAIN_C = '#include <stdio.h>\nint main(void) {\n    printf("hi\\n");\n    return 0;\n}'


@pytest.mark.parametrize(("language", "tag"), [
    ("cpp", "cpp"), ("cpp", "c++"), ("cpp", "C++"), ("cpp", "cc"),
    ("c", "c"), ("c", "C"),
    ("rust", "rust"), ("rust", "rs"),
    ("javascript", "js"), ("javascript", "javascript"), ("javascript", "node"),
    ("python", "python3"), ("python", "Python"), ("python", "py"),
    ("c", ""),  # untagged fits any language
])
def test_language_tags(language: str, tag: str) -> None:
    body = F if language == "python" else MAIN_C
    info = f"{tag} title=main" if tag else ""  # what follows the tag on the fence line is ignored
    assert extract_code(f"Answer:\n```{info}\n{body}\n```\n", language) == body


@pytest.mark.parametrize(("language", "tag"), [("cpp", "c"), ("c", "cpp"), ("javascript", "java"), ("c", "csharp")])
def test_a_near_miss_tag_is_another_language(language: str, tag: str) -> None:
    assert extract_code(fence(MAIN_C, tag), language) is None


def test_the_entry_point_picks_among_c_blocks() -> None:
    helper = "static long long helper_with_a_long_name(long long a, long long b) { return a * b + a - b; }"
    solve = "int solve(int n) { return n; }"
    assert extract_code(f"{fence(helper, 'c')}\n{fence(solve, 'c')}", "c", "solve") == solve


@pytest.mark.parametrize(("language", "text", "code"), [
    ("c", f"Here it is:\n{MAIN_C}\nCompile with gcc.", f"{MAIN_C}\nCompile with gcc."),  # prose is kept
    ("rust", "Try this:\nuse std::io;\nfn main() {}", "use std::io;\nfn main() {}"),
    ("javascript", "Try this:\nfunction f(x) {\n  return x;\n}", "function f(x) {\n  return x;\n}"),
    ("cpp", "Solution:\nusing namespace std;\nint main() {}", "using namespace std;\nint main() {}"),
])
def test_unfenced_programs_in_other_languages(language: str, text: str, code: str) -> None:
    assert extract_code(text, language) == code


def test_a_syntax_error_in_fenced_code_stays_visible() -> None:
    code = "import sys\n\ndef solve():\n    n = int(input()\n    print(n * 2)\n\nsolve()"
    assert extract_code(fence(code), "python") == code


# -- complete_code -----------------------------------------------------------------------------------------

PREFIX = 'def f(x):\n    """Add one."""\n'


@pytest.mark.parametrize("after", [
    "\ndef g():\n    pass\n", "\nclass A:\n    pass\n", '\nif __name__ == "__main__":\n    f(1)\n',
    "\nprint(f(1))\n", "\n# Tests\n", "\nassert f(1) == 2\n", "\n```\nThat is all.",
])
def test_a_continuation_stops_where_it_leaves_the_function(after: str) -> None:
    assert complete_code(PREFIX, "    return x + 1\n" + after) == PREFIX + "    return x + 1\n"


def test_the_earliest_stop_wins_and_the_body_is_kept_whole() -> None:
    body = "    # one more\n    def inner(y):\n        return y\n    return inner(x) + 1"
    continuation = body + "\n\nprint(f(1))\n\ndef g():\n    pass\n"
    assert complete_code(PREFIX, continuation) == PREFIX + body + "\n"
    assert complete_code(PREFIX, body) == PREFIX + body + "\n"


# -- sanitize_python ---------------------------------------------------------------------------------------

ANSWER = '''"""Module docstring."""
import math
from functools import lru_cache
LIMIT = 10


@lru_cache(maxsize=None)
def f(x):
    return math.floor(x) + 1


class Box:
    size = f(1)


print(f(1))
f(2)
assert f(3) == 5, "a wrong example the model made up"
for i in range(3):
    print(f(i))
while False:
    pass
if __name__ == '__main__':
    x = int(input())
    print(f(x))
if LIMIT > 5:
    LIMIT = 5
'''


def test_sanitize_keeps_definitions_and_drops_what_runs() -> None:
    clean = sanitize_python(ANSWER, keep_main=False, entry="f")
    top = [type(node).__name__ for node in ast.parse(clean).body]
    assert top == ["Expr", "Import", "ImportFrom", "Assign", "FunctionDef", "ClassDef", "For", "While", "If"]
    assert "@lru_cache(maxsize=None)" in clean
    assert "__main__" not in clean and "assert" not in clean and "print(f(1))" not in clean
    namespace: dict[str, object] = {}
    # Our own text; the original would call input() and fail its assert.
    exec(compile(clean, "<clean>", "exec"), namespace)  # noqa: S102
    assert namespace["LIMIT"] == 5


def test_sanitize_keeps_module_level_setup() -> None:
    code = "import sys\nsys.setrecursionlimit(10**6)\nFACT = [1] * 20\nfor i in range(1, 20):\n" \
           "    FACT[i] = FACT[i - 1] * i\ndef f(n):\n    return FACT[n]\nprint(f(5))\n"
    namespace: dict[str, object] = {}
    limit = sys.getrecursionlimit()
    try:
        exec(compile(sanitize_python(code, keep_main=False, entry="f"), "<clean>", "exec"), namespace)  # noqa: S102
    finally:  # the limit is the whole test process's: the proxy's "nested too deeply" test depends on it
        sys.setrecursionlimit(limit)
    assert namespace["f"](5) == 120  # type: ignore[operator]


def test_sanitize_leaves_programs_and_unparsable_code_alone() -> None:
    assert sanitize_python(ANSWER, keep_main=True) == ANSWER
    broken = "def f(x)\n    return x\nprint(f(1))\n"
    assert sanitize_python(broken, keep_main=False) == broken


@pytest.mark.parametrize("main", ['if __name__ == "__main__":\n    main()', "if '__main__' == __name__: main()"])
def test_sanitize_drops_main_blocks_in_either_quoting(main: str) -> None:
    assert sanitize_python(f"def main():\n    pass\n{main}\n", keep_main=False) == "def main():\n    pass\n"


def test_sanitize_keeps_statements_sharing_a_line() -> None:
    clean = sanitize_python("import math; print(math.pi)\n\ndef f():\n    return math.pi\n", keep_main=False)
    assert "import math" in clean


# -- normalise ---------------------------------------------------------------------------------------------

ONE = 'def f(x):\n    # add one\n    return x + 1\n\n\nNAME = "f"\n'
SAME = "def f(x):\n\n    return (x\n            + 1)  # one more\nNAME = 'f'\n"
OTHER = 'def f(x):\n    return x + 2\n\n\nNAME = "f"\n'


def test_normalise_python() -> None:
    assert normalise(ONE, "python") == normalise(SAME, "python")
    assert normalise(ONE, "python") != normalise(OTHER, "python")
    assert normalise("def f(:\n  x", "python") == normalise("def f(:   x", "python")  # no AST: whitespace


def test_normalise_other_languages_collapses_whitespace_only() -> None:
    assert normalise("int main() {\n\treturn 0;\n}\n", "c") == normalise("int main() { return 0; }", "c")
    assert normalise("int main() { return 0; }", "c") != normalise("int main() { return 1; }", "c")
    assert normalise("f('a')", "javascript") != normalise('f("a")', "javascript")


# -- add_imports -------------------------------------------------------------------------------------------

PROBLEM = 'from typing import List\nimport math\n\n\ndef mean(xs: List[float]) -> float:\n    """Mean."""\n'
MEAN = "def mean(xs: List[float]) -> float:\n    return math.fsum(xs) / len(xs)\n"


def test_add_imports_puts_back_what_the_answer_dropped() -> None:
    fixed = add_imports(MEAN, PROBLEM)
    assert fixed == "from typing import List\nimport math\n" + MEAN
    namespace: dict[str, object] = {}
    exec(compile(fixed, "<fixed>", "exec"), namespace)  # noqa: S102
    assert callable(namespace["mean"])


def test_add_imports_adds_only_what_is_missing() -> None:
    assert add_imports("import math\n" + MEAN, PROBLEM) == "from typing import List\nimport math\n" + MEAN
    has_both = "from typing import List\nimport math\n" + MEAN
    assert add_imports(has_both, PROBLEM) == has_both
    assert add_imports(MEAN, "Compute the mean of a list of floats.") == MEAN


def test_add_imports_after_a_future_import() -> None:
    fixed = add_imports("from __future__ import annotations\n" + MEAN, PROBLEM)
    compile(fixed, "<fixed>", "exec")
