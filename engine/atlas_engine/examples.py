"""The examples a problem statement carries, as public tests: for a Python function, doctests, ``f(x) == y`` /
``f(x) => y`` lines, ``assert`` lines and LeetCode's ``Input: a = 1`` / ``Output: 2``; for a program that reads
stdin (any language), sample input and output blocks as Codeforces, AtCoder, LiveCodeBench and hand-written
statements set them out."""

from __future__ import annotations

import itertools
import re

from atlas_engine.problem import Test
from atlas_engine.pyexpr import closed, parses, split_assert

# Matched on a stripped line (``_arrow``): the value runs to the line's last character, a trailing [.,;] is cut
# in code (a lazy value before optional punctuation and spaces backtracks cubically on a long line).
ARROW = re.compile(r"^(?:[*\-•]\s*)?(?:for\s+)?(?:>>>\s*)?(?P<call>[A-Za-z_][A-Za-z0-9_]*\(.*\))\s*"
                   r"(?P<op>==>|=>|==|=|➞|→|->|should return|returns|should be)\s*(?P<value>.*\S)$", re.IGNORECASE)
# "For lst = [1,2,3] the output should be 14" (a one-parameter function); matched on a collapsed line.
FOR_PARAM = re.compile(r"^for (?P<name>[A-Za-z_][A-Za-z0-9_]*) ?= ?(?P<arg>.+?),? the output should be "
                       r"(?P<value>.*\S)$", re.IGNORECASE)


# Every pattern below is matched against one short line with its whitespace collapsed (``_short``), or has no
# two repetitions next to each other: a problem is up to 200,000 characters of anyone's text, and a pattern that
# backtracks over a long line would hold the event loop for minutes.
MAX_HEADER_CHARS = 80
MAX_EXAMPLE_LINE_CHARS = 4000  # a doctest or "f(x) == y" line longer than this is not an example
MAX_EXAMPLES = 50
# "Sample Input 1", "Example Output:", "**Input**", "### Output 2" on a line of their own.
SAMPLE_HEADER = re.compile(r"^(?:#+ ?)?(?:\*\*)?(?P<label>sample |example )?(?P<kind>input|output)(?: ?#? ?\d{1,3})?"
                           r"(?:\*\*)?:?(?:\*\*)?$", re.IGNORECASE)
# A sample header glued to the sentence before it ("...recognized as a positive answer).Sample Input 1:").
GLUED_HEADER = re.compile(r"(?<=\S)((?:sample|example)[ \t](?:input|output)(?:[ \t]?#?[ \t]?\d{1,3})?[ \t]?:)",
                          re.IGNORECASE)
INLINE_IO = re.compile(r"^\s*(input|output)\s*:\s*(.+)$", re.IGNORECASE)
# Where a sample's block ends: the statement's next section.
SECTION = re.compile(r"^(?:#+ ?)?(?:\*\*)?(?:notes?|explanation|constraints|hints?|examples?|sample explanation"
                     r"|explanation (?:of )?(?:sample |example )?#?\d{0,3})(?:\*\*)?:?$", re.IGNORECASE)
TEX = re.compile(r"\$[^$\n]{1,200}\$|\\(?:texttt|le|leq|cdot|dots)\b")


def parse_examples(text: str, entry: str | None, language: str, owner: str | None = None) -> list[Test]:
    """The examples a problem statement carries, as tests: for a function, doctests (``>>> f(x)`` then the
    value), ``f(x) == y`` / ``f(x) => y`` lines and ``assert`` lines; for a program, Input/Output samples.
    A method's examples call it on a fresh instance of its class (``owner``)."""
    if entry and language == "python":
        tests = _dedupe(_python_examples(text, entry))
        if owner:
            for t in tests:
                if t.call and t.code.startswith("assert __atlas_eq("):
                    t.code = f"assert __atlas_eq({owner}().{t.call}, {t.expected})"
        return tests
    if entry and language == "javascript":
        return []
    return _dedupe(_stdin_samples(text))


def _python_examples(text: str, entry: str) -> list[Test]:
    tests: list[Test] = []
    lines = text.splitlines()
    params = _parameters(text, entry)
    headers = [n for n, line in enumerate(lines) if re.search(r"\bexamples?\b", line, re.IGNORECASE)]
    examples_from = headers[-1] if headers else -1
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(">>>"):
            expr = line[3:].strip()
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("..."):  # continuation lines
                expr += " " + lines[j].strip()[3:].strip()
                j += 1
            out = []
            while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(">>>") \
                    and '"""' not in lines[j] and "'''" not in lines[j]:
                out.append(lines[j].strip())
                j += 1
            if not out and (m := _arrow(expr)):  # ">>> f(x) == y" with nothing printed below
                expr, out = m.group("call"), [_value(m)]
            test = _value_test(expr, " ".join(out), entry) if len(expr) <= MAX_EXAMPLE_LINE_CHARS else None
            if test is not None:
                tests.append(test)
            i = j
            continue
        if line.startswith("assert "):
            call, expected = split_assert(line)
            if call and call.split("(", 1)[0] == entry and parses(line, "exec"):
                tests.append(Test("assert", "example", code=line, call=call, expected=expected))
        elif (m := _arrow(line)) and m.group("call").startswith(f"{entry}(") and \
                (m.group("op") != "=" or i > examples_from):  # "f(n) = ..." above the examples is a definition
            test = _value_test(m.group("call"), _value(m), entry)
            if test is not None:
                tests.append(test)
        elif len(line) <= MAX_EXAMPLE_LINE_CHARS and (m := FOR_PARAM.match(" ".join(line.split()))) \
                and params == [m.group("name")]:
            test = _value_test(f"{entry}({m.group('arg')})", _value(m), entry)
            if test is not None:
                tests.append(test)
        elif (m := INLINE_IO.match(line)) and m.group(1).lower() == "input" and i + 1 < len(lines):
            answer = INLINE_IO.match(lines[i + 1])
            if answer and answer.group(1).lower() == "output":  # "Input: arr = [1, 2], k = 3" / "Output: [2]"
                test = _value_test(f"{entry}({m.group(2)})", answer.group(2), entry)
                if test is not None:
                    tests.append(test)
        i += 1
    return tests


def _arrow(line: str) -> re.Match[str] | None:
    line = line.strip()
    return ARROW.match(line) if len(line) <= MAX_EXAMPLE_LINE_CHARS else None


def _value(match: re.Match[str]) -> str:
    """A matched value without the sentence's closing punctuation ("f(2) returns 4.")."""
    value = match.group("value")
    return value[:-1].rstrip() if value[-1:] in ".,;" else value


def _parameters(text: str, entry: str) -> list[str]:
    found = re.search(rf"def\s+{re.escape(entry)}\s*\((?P<args>[^)]*)\)", text)
    if not found:
        return []
    return [a.split(":")[0].split("=")[0].strip() for a in found.group("args").split(",") if a.strip()]


def _value_test(expr: str, value: str, entry: str) -> Test | None:
    """``expr`` should give ``value``: a test only when both are closed expressions (``fib(n)`` or a value
    naming a variable is prose, not an example). Both are re-printed from their AST, which drops comments."""
    value = {"true": "True", "false": "False", "null": "None"}.get(value.strip(), value.strip())
    call, expected = closed(expr, entry), closed(value, None)
    if call is None or expected is None or not call.startswith(f"{entry}("):
        return None
    return Test("assert", "example", code=f"assert __atlas_eq({call}, {expected})", call=call, expected=expected)


def _short(line: str) -> str | None:
    """A line as headers are matched: stripped, whitespace runs as one space; None when too long to be one."""
    return " ".join(line.split()) if len(line) <= 4 * MAX_HEADER_CHARS and len(line.strip()) <= MAX_HEADER_CHARS \
        else None


def _matches(pattern: re.Pattern[str], line: str) -> re.Match[str] | None:
    short = _short(line)
    return pattern.match(short) if short is not None else None


def is_prose(row: str) -> bool:
    """A sentence, not data: four or more words with closing punctuation, or TeX."""
    return (row[-1:] in ".:!?;" and len(row.split(maxsplit=4)) > 3 and row[:1].isalpha()) or \
        TEX.search(row) is not None


def _stdin_samples(text: str) -> list[Test]:
    """Sample input/output pairs. Labelled headers ("Sample Input 1", "Example Output") win: when a statement
    has them, its bare "Input" / "Output" headers are the format's description, not samples. An input block runs
    to its output header (blank lines between its rows are dropped: statements converted from HTML put them
    between every line); an output block ends at a blank line, unless its input had blank lines between rows,
    and always at the next header, section or sentence. A fenced block is taken as it is. ``Input: ...`` /
    ``Output: ...`` pairs on single lines count too."""
    lines = GLUED_HEADER.sub(r"\n\1\n", text.replace("\r\n", "\n")).split("\n")
    headers = [(i, m) for i, line in enumerate(lines) if (m := _matches(SAMPLE_HEADER, line))]
    labelled = any(m.group("label") for _, m in headers)
    blocks: list[tuple[str, str, bool]] = []  # kind, body, rows separated by blank lines
    starts = {i for i, _ in headers}
    for i, m in headers:
        if labelled and not m.group("label"):
            continue
        body, spaced = _block(lines, i + 1, starts, m.group("kind").lower(), blocks[-1][2] if blocks else False)
        blocks.append((m.group("kind").lower(), body, spaced))
    tests = [Test("stdin", "example", input=body, output=next_body)
             for (kind, body, _), (next_kind, next_body, _) in itertools.pairwise(blocks)
             if kind == "input" and next_kind == "output" and body.strip() and next_body.strip()]
    for first, second in itertools.pairwise(lines):
        ask, answer = INLINE_IO.match(first), INLINE_IO.match(second)
        if ask and answer and ask.group(1).lower() == "input" and answer.group(1).lower() == "output":
            tests.append(Test("stdin", "example", input=ask.group(2).strip().strip("`") + "\n",
                              output=answer.group(2).strip().strip("`") + "\n"))
    return tests


def _block(lines: list[str], start: int, headers: set[int], kind: str, input_spaced: bool) -> tuple[str, bool]:
    """The block under a header: its text ("" when it is prose, so no test comes of it) and whether its rows
    were separated by blank lines."""
    j = start
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j < len(lines) and lines[j].strip().startswith("```"):
        end = next((n for n in range(j + 1, len(lines)) if lines[n].strip().startswith("```")), len(lines))
        return "\n".join(lines[j + 1:end]).strip("\n") + "\n", False
    rows: list[str] = []
    spaced = False
    blank = False
    while j < len(lines) and j not in headers and not _matches(SECTION, lines[j]):
        row = lines[j].strip().strip("`").strip()
        if not row:
            blank = True
        elif is_prose(row):
            if not rows:
                return "", False  # the format described in words, or an explanation: not a sample
            break
        elif blank and rows and kind == "output" and not input_spaced:
            break  # the output ended at the blank line; what follows is something else
        else:
            spaced = spaced or (blank and bool(rows))
            blank = False
            rows.append(row)
        j += 1
    return ("\n".join(rows) + "\n" if rows else ""), spaced


def _dedupe(tests: list[Test]) -> list[Test]:
    """Each example once, the first ``MAX_EXAMPLES`` of them (a statement is not a test suite)."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for t in tests:
        if (t.code, t.input, t.output) not in seen:
            seen.add((t.code, t.input, t.output))
            kept.append(t)
    return kept[:MAX_EXAMPLES]


