"""``--send-tests stripped``: the statement loses its worked samples, so the engine finds no example to check
against (measured with the engine's own example parser), and keeps its input and output format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from atlas_bench.problems import strip_samples
from atlas_engine.examples import parse_examples

LCB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "livecodebench" / "release_v1_public.jsonl.gz"


def test_glued_and_headed_samples_are_cut() -> None:
    text = "Print the sum.\n\nInput\n\nN\n\nOutput\n\nthe sum.Sample Input 1:\n2\n\nSample Output 1:\n\n2\n"
    assert strip_samples(text) == "Print the sum.\n\nInput\n\nN\n\nOutput\n\nthe sum.\n"
    assert strip_samples("Add.\nExample 1:\nInput: a = 1\nOutput: 1\n") == "Add.\n"
    assert strip_samples("No samples here.") == "No samples here."


def test_no_livecodebench_stdin_statement_keeps_a_sample() -> None:
    if not LCB.exists():
        pytest.skip(f"{LCB} is not on this machine")
    stripped = 0
    with gzip.open(LCB, "rt") as handle:
        for row in map(json.loads, handle):
            if json.loads(row["public_test_cases"])[0]["testtype"] != "stdin":
                continue
            text = strip_samples(row["question_content"])
            assert parse_examples(text, None, "python") == [], row["question_id"]
            assert "Output" in text, row["question_id"]  # the format stays: only the worked samples go
            stripped += text != row["question_content"]
    assert stripped >= 200
