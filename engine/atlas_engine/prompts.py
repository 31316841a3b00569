"""What the model is asked: a solution (two phrasings for diversity, or from a plan), distinct plans, tests or
test inputs of its own, and a repair."""

from __future__ import annotations

from atlas_engine.llm import Message
from atlas_engine.problem import Problem

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


def solution(problem: Problem, variant: str, context: str | None = None, plan: str | None = None) -> list[Message]:
    """``direct`` asks for the code; ``plan`` asks for the approach as comments first (a different path
    through the problem, for diversity among candidates). With ``plan`` given, the code follows that approach
    (PlanSearch); ``context`` (retrieved material) goes above the problem."""
    ask = _task(problem)
    if plan:
        ask += f" Use this approach: {plan}"
    elif variant == "plan":
        ask += " First write the approach as a few short comments at the top of the code, then the code."
    head = f"Possibly useful context:\n{context.strip()}\n\n" if context else ""
    return [_system(problem.language), {"role": "user", "content": f"{head}{problem.text.strip()}\n\n{ask}"}]


def plans(problem: Problem, count: int) -> list[Message]:
    """``count`` genuinely different approaches, in words: candidates written from them differ in idea, not
    only in wording."""
    ask = (f"Propose {count} genuinely different approaches to solving this problem (a different algorithm, "
           "data structure or way of looking at it, not a rewording of one idea). Number them 1., 2., ... and "
           "describe each in two to four plain sentences. Do not write any code.")
    return [{"role": "system", "content": "You are an expert competitive programmer and algorithm designer."},
            {"role": "user", "content": f"{problem.text.strip()}\n\n{ask}"}]


def test_inputs(problem: Problem, count: int) -> list[Message]:
    """Inputs to run every candidate program on (AlphaCode-style: candidates are clustered by what they print),
    small ones written out and a generator for a larger one."""
    ask = (f"Write {count} different valid test inputs for this problem, exactly as they would be given on "
           "standard input, each in its own ```input code block. Cover small, edge and typical cases and respect "
           "the input format and constraints. Then write a short Python program in one ```python block that "
           "prints ONE larger valid input: it reads an integer seed from standard input and uses "
           "random.seed(seed). Do not solve the problem and do not write the expected outputs.")
    return [{"role": "system", "content": "You are an expert at testing competitive programming solutions."},
            {"role": "user", "content": f"{problem.text.strip()}\n\n{ask}"}]


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
