"""What a run's records add up to (random pick, pass@k, seeds, difficulty, wall clock), the rebuilt report and
plots, ``compare``'s flips, and ``atlas bench`` as the same program."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from atlas_bench.__main__ import main
from atlas_bench.compare import compare
from atlas_bench.report import read_tasks, report, summarise
from atlas_cli.main import main as atlas_main

CONFIG: dict[str, Any] = {"dataset": "mine", "k": 4, "ablations": ["baseline", "public"], "seeds": [0, 1],
                          "repair_rounds": 0, "max_tokens": 64, "concurrency": 1, "extra": {}}


def row(passed: bool, samples: list[bool], tokens: int = 10, calls: int = 1, runs: int | None = None
        ) -> dict[str, Any]:
    return {"passed": passed, "verdict": "passed" if passed else "TestFailure", "public_verified": passed,
            "tokens": tokens, "wall_s": 1.0, "candidates": len(samples), "samples_passed": samples,
            "llm_calls": len(samples), "sandbox_calls": calls, "sandbox_runs": runs, "repair_rounds": 0, "code": "x"}


def record(problem: str, seed: int, baseline: bool, public: bool, samples: list[bool],
           difficulty: str | None = None) -> dict[str, Any]:
    return {"id": problem, "seed": seed, "difficulty": difficulty,
            "ablations": {"baseline": row(baseline, [baseline]), "public": row(public, samples, 40, 2)}}


RECORDS = [
    record("a", 0, False, True, [True, False, False, False]),
    record("a", 1, False, False, [False, False, False, False]),
    record("b", 0, True, True, [True, True, True, True]),
    record("b", 1, True, True, [True, True, True, True]),
]


def test_rates_average_seeds_per_problem_and_samples_give_random_pick_and_coverage() -> None:
    summary = summarise(RECORDS, CONFIG, [{"started": 0.0, "ended": 36.0, "tasks": 4}])
    public = summary["ablations"]["public"]
    assert summary["problems"] == 2 and public["tasks"] == 4
    assert public["selected@1"] == 0.75  # a: (1 + 0) / 2, b: 1
    assert public["per_seed"] == {"0": 1.0, "1": 0.5}
    assert public["random_pick"] == 0.5625  # seeds pooled: a 1 of 8, b 8 of 8 -> (0.125 + 1) / 2
    assert public["k"] == 4 and public["short_of_k"] == 0 and public["sampled_problems"] == 2
    assert public["pass@k"] == 0.75  # a: 1 - C(7, 4) / C(8, 4) = 0.5, b: 1
    assert summary["ablations"]["baseline"]["pass@k"] == 0.5 and summary["ablations"]["baseline"]["k"] == 1
    assert summary["ablations"]["baseline"]["selected@1"] == 0.5
    assert public["sandbox_calls_per_task"] == 2 and public["tokens_per_task"] == 40
    assert summary["run"]["tasks_per_hour"] == 400.0  # 4 tasks in 36 s of wall clock
    # no dataset difficulty: how many of the public samples solve it
    assert summary["difficulty"]["every sample solves"] == {"tasks": {"baseline": 2, "public": 2},
                                                              "passed": {"baseline": 2, "public": 2}}
    assert summary["difficulty"]["some samples solve"]["passed"] == {"baseline": 0, "public": 1}
    assert summary["difficulty"]["no sample solves"]["tasks"] == {"baseline": 1, "public": 1}


def test_a_task_missing_an_ablation_or_its_samples_is_not_counted_as_failing_it() -> None:
    old = record("c", 0, True, True, [True])
    del old["ablations"]["public"]["samples_passed"]  # scored before samples were
    del old["ablations"]["baseline"]
    summary = summarise([*RECORDS, old], CONFIG, [])
    assert summary["ablations"]["public"]["sampled_problems"] == 2 and summary["ablations"]["public"]["problems"] == 3
    assert summary["ablations"]["baseline"]["tasks"] == 4
    assert sum(d["tasks"]["baseline"] for d in summary["difficulty"].values()) == 4
    assert sum(d["tasks"]["public"] for d in summary["difficulty"].values()) == 5


def test_the_datasets_own_difficulty_wins() -> None:
    records = [record("a", 0, False, True, [True], "hard"), record("b", 0, True, True, [True], "easy")]
    assert set(summarise(records, CONFIG, [])["difficulty"]) == {"hard", "easy"}


def write_run(out: Path, records: list[dict[str, Any]], config: dict[str, Any] = CONFIG) -> None:
    out.mkdir()
    (out / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "results.json").write_text(json.dumps({"config": config, "environment": {"python": "3.11"}}))


def test_report_rebuilds_the_files_from_the_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "run", RECORDS)
    with pytest.raises(SystemExit) as ended:
        main(["report", str(tmp_path / "run")])
    assert ended.value.code == 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| public | 4 | 75.0% |" in report and "## Per seed" in report and "## By difficulty" in report
    assert json.loads((tmp_path / "run" / "results.json").read_text())["environment"] == {"python": "3.11"}
    for png in ("pass_rates.png", "tokens_vs_pass.png", "difficulty.png"):
        assert (tmp_path / "run" / png).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as ended:
        main(["report", str(tmp_path / "nothing")])
    assert ended.value.code == 2 and "results.json" in capsys.readouterr().err


def test_compare_counts_the_flips_on_the_tasks_both_runs_hold(tmp_path: Path) -> None:
    write_run(tmp_path / "a", RECORDS)
    later = [record("a", 0, True, False, [False] * 4), *RECORDS[1:3]]  # a#0 flips both ways; b#1 only in A
    write_run(tmp_path / "b", later)
    text = compare(tmp_path / "a", tmp_path / "b")
    assert "3 task(s) in both runs (4 in A, 3 in B)" in text
    assert "| baseline | 33.3% | 66.7% | +33.3 pts | 1 | 0 |" in text
    assert "| public | 66.7% | 33.3% | -33.3 pts | 0 | 1 |" in text
    assert "**public**: fail → pass none; pass → fail a#0" in text


PLANS = CONFIG | {"ablations": ["baseline", "public", "plans"], "plans": 2, "send_tests": "none",
                  "extra": {"testtype": "stdin", "public_only": True}}


def with_plans(r: dict[str, Any], passed: bool, runs: int) -> dict[str, Any]:
    samples = [passed] * 4  # the plans samples all agree, unlike the public ones: difficulty must not follow them
    return r | {"ablations": r["ablations"] | {"plans": row(passed, samples, 50, 3, runs)}}


def test_the_plans_ablation_its_options_and_the_sandbox_runs_are_reported(tmp_path: Path) -> None:
    records = [with_plans(RECORDS[0], True, 30), with_plans(RECORDS[1], False, 10), *RECORDS[2:]]
    summary = summarise(records, PLANS, [])
    plans = summary["ablations"]["plans"]
    assert plans["tasks"] == 2 and plans["selected@1"] == 0.5 and plans["k"] == 4
    assert plans["sandbox_calls_per_task"] == 3 and plans["sandbox_runs_per_task"] == 20
    assert summary["ablations"]["public"]["sandbox_runs_per_task"] is None
    assert summary["difficulty"]["some samples solve"]["tasks"]["plans"] == 1  # by the public samples
    text = report(summary)
    assert "2 of the k candidates written from distinct plans" in text and "only the problems with stdin" in text
    assert "The platform saw the prompt only (no tests sent)" in text and "sandbox runs / task |" in text
    assert "None was sent as a test, but they are the samples the statement shows" in text
    assert "| plans | 2 | 50.0% |" in text and text.count("| 3.0 | 20.0 |") == 1
    assert "| public | 4 | 75.0% |" in text and "| 2.0 |  |" in text  # no runs reported: an empty cell

    write_run(tmp_path / "a", RECORDS)
    write_run(tmp_path / "b", records, PLANS)
    text = compare(tmp_path / "a", tmp_path / "b")
    options, ablations = text.split("| ablation |")
    assert "| tests sent | public | none |" in options and "| test type | all | stdin |" in options
    assert "| plans | — | 2 |" in options and "| k |" not in options  # only what differs
    assert "| public | 75.0% | 75.0% | +0.0 pts | 0 | 0 | 2.0 | 2.0 |" in ablations
    assert "| plans |" not in ablations  # an ablation one run lacks is not compared
    write_run(tmp_path / "c", records, PLANS)
    text = compare(tmp_path / "b", tmp_path / "c")
    assert "Both runs were asked the same" in text
    assert "| plans | 50.0% | 50.0% | +0.0 pts | 0 | 0 | 3.0 (20.0 runs) |" in text


def test_an_archived_run_is_read_compressed_and_a_resumed_one_adds_to_it(tmp_path: Path) -> None:
    write_run(tmp_path / "a", RECORDS[:3])
    tasks = tmp_path / "a" / "tasks.jsonl"
    (tmp_path / "a" / "tasks.jsonl.gz").write_bytes(gzip.compress(tasks.read_bytes()))
    tasks.write_text(json.dumps(RECORDS[3]) + "\n")  # what resuming the archived run appended
    assert list(read_tasks(tmp_path / "a")) == ["a#0", "a#1", "b#0", "b#1"]


def test_atlas_bench_is_atlas_bench(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        atlas_main(["bench", "--version"])
    assert ended.value.code == 0 and capsys.readouterr().out.startswith("atlas-bench ")
    with pytest.raises(SystemExit) as ended:
        atlas_main(["bench", "compare", "/nonexistent-a", "/nonexistent-b"])
    assert ended.value.code == 2 and "tasks.jsonl" in capsys.readouterr().err
