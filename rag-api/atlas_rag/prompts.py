"""What the model is asked: a solution (two phrasings for diversity), tests of its own, and a repair."""

from __future__ import annotations

from atlas_rag.llm import Message
from atlas_rag.problem import Problem

NAMES = {"python": "Python", "javascript": "JavaScript", "c": "C", "cpp": "C++", "rust": "Rust", "bash": "Bash"}
FENCE_TAG = {"python": "python", "javascript": "javascript", "c": "c", "cpp": "cpp", "rust": "rust", "bash": "bash"}
VARIANTS = ("direct", "plan")


def _system(language: str) -> Message:
    name, tag = NAMES[language], FENCE_TAG[language]
    return {"role": "system", "content": f"You are an expert {name} programmer. Answer with one complete, "
                                         f"correct {name} solution in a single ```{tag} code block."}


def _task(problem: Problem) -> str:
    name = NAMES[problem.language]
    if problem.reads_stdin:
        return (f"Write a complete {name} program that reads the input from standard input and prints the "
                "answer to standard output.")
    return (f"Write the {name} function `{problem.entry_point}`, with any imports it needs. Do not read input, "
            "print, or add tests or example calls.")


def solution(problem: Problem, variant: str) -> list[Message]:
    """``direct`` asks for the code; ``plan`` asks for the approach as comments first (a different path
    through the problem, PlanSearch-style, for diversity among candidates)."""
    ask = _task(problem)
    if variant == "plan":
        ask += " First write the approach as a few short comments at the top of the code, then the code."
    return [_system(problem.language), {"role": "user", "content": f"{problem.text.strip()}\n\n{ask}"}]


def completion_prefix(problem: Problem) -> str:
    """For base models: a file the model continues. A problem written as code (a signature and docstring)
    is used as it is; prose becomes a docstring above the function's first line."""
    text = problem.text.rstrip()
    if problem.entry_point and f"def {problem.entry_point}(" in text:
        return text + "\n"
    head = f'"""\n{text}\n"""\n\n'
    return head + (f"def {problem.entry_point}(" if problem.entry_point else "")


def self_tests(problem: Problem, count: int) -> list[Message]:
    entry = problem.entry_point
    ask = (f"Write {count} different assert statements that check a correct `{entry}` on typical and edge-case "
           f"inputs, one per line, each of the form `assert {entry}(...) == expected_value`, in one ```python "
           "block. Do not write the function itself.")
    return [{"role": "system", "content": "You are an expert Python tester."},
            {"role": "user", "content": f"{problem.text.strip()}\n\n{ask}"}]


def repair(problem: Problem, code: str, test: str, expected: str | None, got: str | None,
           error: str | None) -> list[Message]:
    """The failing code goes back with the failing test, what it should give, what it gave and the error."""
    lines = [f"This {NAMES[problem.language]} code fails a test.", "", "Code:",
             f"```{FENCE_TAG[problem.language]}", code.rstrip(), "```", "", f"Test: {test}"]
    if expected is not None:
        lines.append(f"Expected: {expected}")
    if got is not None:
        lines.append(f"Got: {got}")
    if error:
        lines.append(f"Error: {error}")
    lines += ["", f"Fix the code. {_task(problem)} Answer with the whole corrected code."]
    return [_system(problem.language),
            {"role": "user", "content": f"{problem.text.strip()}\n\n" + "\n".join(lines)}]
