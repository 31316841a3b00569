"""The Lens's benchmark pieces: its ablations' budgets, the labelled rows a run leaves, tie sets, the first-pick
gain against a random pick, and paired sandbox runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas_bench.lens import evaluation_sources, labelled_rows, parse_sources
from atlas_bench.lens_eval import first_pick, paired_runs, tie_sets
from atlas_bench.problems import BenchProblem, DatasetError, Hidden
from atlas_bench.report import TASKS_FILE
from atlas_bench.run import BenchConfig


def test_only_the_lens_ablations_use_the_lens_and_lens_stop_stops_at_the_first_pass() -> None:
    config = BenchConfig(dataset="humaneval", ablations=("public", "lens", "lens-stop"))
    assert config.budget("public")["lens"] is False and "stop_on_first_pass" not in config.budget("public")
    assert config.budget("lens")["lens"] is True and "stop_on_first_pass" not in config.budget("lens")
    assert config.budget("lens-stop") == config.budget("lens") | {"stop_on_first_pass": True}
    assert config.budget("baseline")["lens"] is False


def test_training_sources_never_name_evaluation_data() -> None:
    sources = parse_sources("mbpp:train,mbpp:prompt,livecodebench:2023-09-30")
    assert [s.name for s in sources] == ["mbpp-train", "mbpp-prompt", "livecodebench-to-2023-09-30"]
    with pytest.raises(DatasetError, match="evaluation data"):
        parse_sources("mbpp:test")
    with pytest.raises(DatasetError, match="cannot be training data"):
        parse_sources("humaneval")
    evaluation = evaluation_sources(sources)
    assert [(s.dataset, s.split, s.since) for s in evaluation] == [
        ("humaneval", "test", None), ("mbpp", "test", None), ("livecodebench", "test", "2023-10-01")]


def sample(code: str, verdict: str, passed: bool) -> dict[str, Any]:
    return {"code": code, "verdict": verdict, "passed": passed}


RECORDS = [
    {"id": "a", "seed": 0, "ablations": {"public": {"samples": [
        sample("x1", "passed", True), sample("x2", "passed", False), sample("x3", "TestFailure", False)]}}},
    {"id": "b", "seed": 0, "ablations": {"public": {"samples": [  # none passed: the best-progress ones tie
        sample("y1", "TestFailure", False), sample("y2", "TestFailure", True), sample("y3", "SyntaxError", False)]}}},
    {"id": "c", "seed": 0, "ablations": {"public": {"samples": [  # one distinct program: no tie
        sample("z", "passed", True), sample("z", "passed", True)]}}},
]


def test_tie_sets_are_the_programs_sharing_the_best_public_outcome() -> None:
    ties = tie_sets(RECORDS)
    assert [(t.task, t.codes, t.passed) for t in ties] == [("a", ["x1", "x2"], [True, False]),
                                                           ("b", ["y1", "y2"], [False, True])]
    assert all(t.mixed for t in ties)


def test_first_pick_gain_against_a_random_pick() -> None:
    ties = tie_sets(RECORDS)
    perfect = first_pick(ties, lambda t: [0.0 if p else 1.0 for p in t.passed], rounds=200)
    assert perfect["lens_pick"] == 1.0 and perfect["random_pick"] == 0.5 and perfect["gain"] == 2.0
    worst = first_pick(ties, lambda t: [1.0 if p else 0.0 for p in t.passed], rounds=200)
    assert worst["gain"] == 0.0 and worst["gain_ci95"] == [0.0, 0.0]


def test_paired_runs_compare_the_same_problem_and_seed() -> None:
    records = [{"id": "a", "seed": 0, "ablations": {
                   "public": {"sandbox_runs": 10, "passed": True, "public_verified": True},
                   "lens-stop": {"sandbox_runs": 4, "passed": True}}},
               {"id": "b", "seed": 0, "ablations": {"public": {"sandbox_runs": 10, "passed": False},
                                                    "lens-stop": {"sandbox_runs": 6, "passed": True}}}]
    paired = paired_runs(records, "public", "lens-stop")
    assert paired["fewer_share"] == 0.5 and paired["flips"] == {"to_pass": 1, "to_fail": 0}
    assert paired["where_a_program_passed"] == {"pairs": 1, "public_runs": 10.0, "lens-stop_runs": 4.0,
                                                "fewer_share": 0.6}


def test_labelled_rows_come_from_a_runs_samples(tmp_path: Path) -> None:
    problem = BenchProblem(id="a", dataset="mbpp", prompt="Add.", hidden=Hidden(mode="assert", tests=[]))
    (tmp_path / TASKS_FILE).write_text(json.dumps(RECORDS[0] | {"difficulty": None}) + "\n")
    rows = labelled_rows(tmp_path, [problem])
    assert rows == [{"task": "a", "dataset": "mbpp", "seed": 0, "problem": "Add.", "candidates": [
        {"code": "x1", "passed": True, "verdict": "passed", "score": None},
        {"code": "x2", "passed": False, "verdict": "passed", "score": None},
        {"code": "x3", "passed": False, "verdict": "TestFailure", "score": None}]}]
