"""``--send-tests stripped``: the statement loses its worked samples, so the engine finds no example to check
against (measured with the engine's own example parser), and keeps everything else: its input and output
format, LeetCode's constraints, the format instructions and the starter code the loader appends."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_bench.datasets import load
from atlas_bench.livecodebench import LCB_FUNCTIONAL, LCB_STDIN
from atlas_bench.problems import strip_samples, stripped_prompt
from atlas_engine.examples import parse_examples
from atlas_engine.parse import method_owner

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_glued_and_headed_samples_are_cut_and_constraints_kept() -> None:
    text = "Print the sum.\n\nInput\n\nN\n\nOutput\n\nthe sum.Sample Input 1:\n2\n\nSample Output 1:\n\n2\n"
    assert strip_samples(text) == "Print the sum.\n\nInput\n\nN\n\nOutput\n\nthe sum.\n"
    leetcode = "Add.\nExample 1:\nInput: a = 1\nOutput: 1\n\nConstraints:\n\n1 <= a <= 9\n"
    assert strip_samples(leetcode) == "Add.\n\nConstraints:\n\n1 <= a <= 9\n"
    assert strip_samples("No samples here.") == "No samples here."


def test_no_livecodebench_prompt_keeps_a_sample_or_loses_anything_else() -> None:
    if not (DATA / "livecodebench" / "release_v1_public.jsonl.gz").exists():
        pytest.skip("the LiveCodeBench file is not on this machine")
    problems = load("livecodebench", DATA).problems
    assert len(problems) == 400
    for p in problems:
        prompt = stripped_prompt(p)
        stdin = p.entry_point is None
        assert parse_examples(prompt, p.entry_point, "python", method_owner(prompt, p.entry_point)) == [], p.id
        assert (LCB_STDIN if stdin else LCB_FUNCTIONAL) in prompt, p.id  # the loader's instructions stay
        if stdin:
            assert "Output" in prompt, p.id  # the output format stays: only the worked samples go
        else:
            assert method_owner(prompt, p.entry_point) == "Solution", p.id  # the starter code stays
    cut = sum(stripped_prompt(p) != p.prompt for p in problems)
    assert cut >= 390
