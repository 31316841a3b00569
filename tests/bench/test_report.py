"""What a run's records add up to (random pick, pass@k, seeds, difficulty, wall clock), the rebuilt report and
plots, ``compare``'s flips, and ``atlas bench`` as the same program."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from atlas_bench.__main__ import main
from atlas_bench.report import compare, read_tasks, summarise
from atlas_cli.main import main as atlas_main

CONFIG: dict[str, Any] = {"dataset": "mine", "k": 4, "ablations": ["baseline", "public"], "seeds": [0, 1],
                          "repair_rounds": 0, "max_tokens": 64, "concurrency": 1, "extra": {}}


def row(passed: bool, samples: list[bool], tokens: int = 10, calls: int = 1) -> dict[str, Any]:
    return {"passed": passed, "verdict": "passed" if passed else "TestFailure", "public_verified": passed,
            "tokens": tokens, "wall_s": 1.0, "candidates": len(samples), "samples_passed": samples,
            "llm_calls": len(samples), "sandbox_calls": calls, "repair_rounds": 0, "code": "x"}


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


def write_run(out: Path, records: list[dict[str, Any]]) -> None:
    out.mkdir()
    (out / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "results.json").write_text(json.dumps({"config": CONFIG, "environment": {"python": "3.11"}}))


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
