"""The benchmark's datasets against the real files in ../shared/datasets (counts, fields, the known fixes), and
the scorer against every canonical solution: a scorer that fails a correct program or passes a wrong one is the
worst bug a benchmark can have."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import pickle
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_bench.datasets import humanevalplus_native, load
from atlas_bench.livecodebench import decode_private_tests, livecodebench
from atlas_bench.problems import BenchProblem, DatasetError
from atlas_bench.score import HiddenTestScorer, Score
from tests.conftest import REPO, SANDBOX_SIGNING

DATA = REPO.parent / "shared" / "datasets"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is not here")


def score_all(sandbox_url: str, problems: list[BenchProblem], answers: Sequence[str | None]) -> list[Score]:
    async def main() -> list[Score]:
        async with httpx.AsyncClient() as http:
            scorer = HiddenTestScorer(http, sandbox_url, SANDBOX_SIGNING)
            slots = asyncio.Semaphore(4)

            async def one(p: BenchProblem, code: str | None) -> Score:
                async with slots:
                    return await scorer.score(p, code)

            return list(await asyncio.gather(*(one(p, c) for p, c in zip(problems, answers, strict=True))))

    return asyncio.run(main())


@needs_data
@pytest.mark.parametrize(("name", "count"), [("humaneval", 164), ("humanevalplus", 164),
                                             ("humanevalplus-native", 164), ("humanevalplus-mini", 164), ("mbpp", 500),
                                             ("mbpp-sanitized", 257), ("mbppplus", 378), ("livecodebench", 400)])
def test_loaders_read_the_real_files(name: str, count: int) -> None:
    loaded = load(name, DATA)
    assert len(loaded.problems) == count
    assert len({p.id for p in loaded.problems}) == count
    assert all(p.prompt.strip() and p.hidden.tests for p in loaded.problems)
    assert next(iter(loaded.files.values())) and loaded.unpinned == []


@needs_data
def test_what_a_user_sees_holds_no_hidden_test() -> None:
    for problem in load("mbpp", DATA).problems:
        first, *rest = [t["code"] for t in problem.hidden.tests]
        assert first in problem.prompt and not any(t in problem.prompt for t in rest if t != first)
    lcb = load("livecodebench", DATA).problems
    functional = [p for p in lcb if p.hidden.mode == "functional"]
    assert functional and all(p.entry_point and p.public_tests[0]["args"] is not None for p in functional)
    assert {p.difficulty for p in lcb} == {"easy", "medium", "hard"}
    window = load("livecodebench", DATA, since="2023-09-01", until="2023-09-30").problems
    assert window and all(p.contest_date and "2023-09-01" <= p.contest_date <= "2023-09-30" for p in window)


@needs_data
def test_splits_fixes_and_pins() -> None:
    assert [p.id for p in load("mbpp", DATA, split="prompt").problems] == [f"mbpp/{i}" for i in range(1, 11)]
    assert len(load("mbpp", DATA, split="validation").problems) == 90
    fixed = next(p for p in load("humanevalplus", DATA).problems if p.id == "HumanEval/32")
    assert "abs(_poly(*inp, candidate(*inp))) <= 0.0001" in fixed.hidden.tests[0]["code"]
    with pytest.raises(DatasetError, match="unknown MBPP split"):
        load("mbpp", DATA, split="dev")
    with pytest.raises(DatasetError, match="--download"):
        load("humaneval", Path("/nonexistent"))


def test_a_changed_file_is_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "mbpp").mkdir()
    row = {"task_id": 11, "text": "Add.", "code": "def add(a, b):\n    return a + b", "test_setup_code": "",
           "test_list": ["assert add(1, 2) == 3"]}
    (tmp_path / "mbpp" / "mbpp.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match="not the pinned release"):
        load("mbpp", tmp_path)
    loaded = load("mbpp", tmp_path, allow_unpinned=True)
    assert [p.id for p in loaded.problems] == ["mbpp/11"] and loaded.unpinned == ["mbpp/mbpp.jsonl"]


def test_livecodebench_releases_read_their_files(tmp_path: Path) -> None:
    def row(qid: str, date: str) -> dict[str, Any]:
        return {"question_id": qid, "question_content": f"Problem {qid}.", "contest_date": date, "starter_code": "",
                "difficulty": "easy", "metadata": "{}", "private_test_cases": "",
                "public_test_cases": json.dumps([{"input": "1\n", "output": "1\n", "testtype": "stdin"}])}

    (tmp_path / "livecodebench").mkdir()
    (tmp_path / "livecodebench" / "test.jsonl").write_text(json.dumps(row("a", "2023-05-01")) + "\n")
    (tmp_path / "livecodebench" / "test2.jsonl").write_text(json.dumps(row("b", "2023-09-01")) + "\n")

    def ids(**kwargs: Any) -> list[str]:
        return [p.id for p in load("livecodebench", tmp_path, **kwargs).problems]

    assert ids() == ["lcb/a"]  # release_v1
    assert ids(release="release_v2") == ["lcb/a", "lcb/b"] and ids(release="v2") == ["lcb/b"]
    assert ids(release="release_v2", since="2023-06-01") == ["lcb/b"]
    assert set(load("livecodebench", tmp_path, release="v1_v2").files) == {"livecodebench/test.jsonl",
                                                                           "livecodebench/test2.jsonl"}
    with pytest.raises(DatasetError, match=r"test3\.jsonl.*--download"):
        load("livecodebench", tmp_path, release="release_v3")
    with pytest.raises(DatasetError, match="unknown LiveCodeBench release"):
        load("livecodebench", tmp_path, release="v7")

    # Offline, the public-only copy stands in for release_v1 alone, and says so.
    offline = tmp_path / "offline"
    (offline / "livecodebench").mkdir(parents=True)
    (offline / "livecodebench" / "release_v1_public.jsonl.gz").write_bytes(
        gzip.compress((json.dumps(row("a", "2023-05-01")) + "\n").encode()))
    loaded = load("livecodebench", offline)
    assert loaded.public_only and [p.id for p in loaded.problems] == ["lcb/a"]
    with pytest.raises(DatasetError, match=r"test\.jsonl is missing"):  # not mixed with later releases
        load("livecodebench", offline, release="release_v2")
    assert not load("livecodebench", tmp_path).public_only


def test_a_test_type_keeps_one_kind_of_problem(tmp_path: Path) -> None:
    """``--testtype``: LiveCodeBench's stdin or functional problems, a custom file's by its hidden mode; other
    datasets have assert tests only, so asking is an error rather than an empty run."""
    rows = [{"question_id": "s", "question_content": "Echo.", "contest_date": "2023-05-01", "starter_code": "",
             "metadata": "{}", "public_test_cases": json.dumps([{"input": "1\n", "output": "1\n",
                                                                 "testtype": "stdin"}])},
            {"question_id": "f", "question_content": "Id.", "contest_date": "2023-05-01",
             "starter_code": "class Solution:\n    def f(self, a):", "metadata": json.dumps({"func_name": "f"}),
             "public_test_cases": json.dumps([{"input": "1", "output": "1", "testtype": "functional"}])}]
    (tmp_path / "livecodebench").mkdir()
    (tmp_path / "livecodebench" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [p.id for p in load("livecodebench", tmp_path).problems] == ["lcb/s", "lcb/f"]
    stdin = load("livecodebench", tmp_path, testtype="stdin").problems
    assert [p.id for p in stdin] == ["lcb/s"] and stdin[0].hidden.mode == "stdin"
    assert [p.id for p in load("livecodebench", tmp_path, testtype="functional").problems] == ["lcb/f"]
    custom = tmp_path / "mine.jsonl"
    custom.write_text(json.dumps({"id": "a", "prompt": "p", "hidden": {"mode": "assert", "tests": [{"code": "1"}]}})
                      + "\n" + json.dumps({"id": "b", "prompt": "p", "hidden": {"mode": "stdin", "tests": [
                          {"input": "", "output": ""}]}}) + "\n")
    assert [p.id for p in load("x", tmp_path, file=custom, testtype="stdin").problems] == ["b"]
    with pytest.raises(DatasetError, match="assert tests only"):
        load("humaneval", tmp_path, testtype="stdin")


@needs_data
def test_offline_livecodebench_stdin_problems_are_scored_on_their_public_tests() -> None:
    """What docs/benchmark.md says is hidden offline: exactly the public tests, which are the statement's samples."""
    loaded = load("livecodebench", DATA, testtype="stdin")
    assert loaded.public_only and len(loaded.problems) == 219
    for p in loaded.problems:
        assert p.hidden.mode == "stdin" and not p.entry_point
        assert p.hidden.tests == [{"input": t["input"], "output": t["output"]} for t in p.public_tests]


@needs_data
def test_private_tests_decode_without_unpickling_objects() -> None:
    sample = json.loads((DATA / "livecodebench" / "private_tests_sample_1873_A.json").read_text())
    row = sample["row"]
    assert decode_private_tests(row["private_test_cases"]) == sample["decoded_private_test_cases"]
    problem = livecodebench([row])[0]
    assert len(problem.hidden.tests) == len(json.loads(row["public_test_cases"])) + 4

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pwned",))

    for value in (Evil(), {"input": 1}):
        encoded = base64.b64encode(zlib.compress(pickle.dumps(value))).decode()
        with pytest.raises((pickle.UnpicklingError, DatasetError)):
            decode_private_tests(encoded)


@needs_data
@pytest.mark.parametrize("name", ["humaneval", "mbpp", "humanevalplus-mini"])
def test_every_canonical_solution_passes_and_a_wrong_one_fails(name: str, sandbox_url: str) -> None:
    problems = load(name, DATA).problems
    scores = score_all(sandbox_url, problems, [p.canonical for p in problems])
    failed = [(p.id, s.verdict, s.failure) for p, s in zip(problems, scores, strict=True) if not s.passed]
    assert failed == []
    # the same programs with the entry point replaced by one that answers None
    wrong = [f"{p.canonical}\n\ndef {entry(p)}(*args, **kwargs):\n    return None\n" for p in problems[:40]]
    verdicts = {s.verdict for s in score_all(sandbox_url, problems[:40], wrong)}
    assert verdicts <= {"TestFailure", "RuntimeError"} and "TestFailure" in verdicts  # every one fails
    assert score_all(sandbox_url, problems[:1], [None])[0].verdict == "no_code"


def entry(problem: BenchProblem) -> str:
    found = problem.entry_point or re.search(r"(\w+)\(", problem.hidden.tests[0]["code"].removeprefix("assert "))
    return found if isinstance(found, str) else found.group(1) if found else "missing"


def test_native_humanevalplus_compares_as_evalplus_does(sandbox_url: str) -> None:
    row = {"task_id": "T/1", "prompt": "def half(xs):\n", "canonical_solution": "    return [x / 2 for x in xs]\n",
           "entry_point": "half", "atol": 0, "base_input": [[[]], [[1.0, 3.0]]], "plus_input": [[[2.0]]]}
    problem = humanevalplus_native([row], "humanevalplus-native")[0]
    answers = {
        "def half(xs):\n    return [x / 2 for x in xs]\n": True,
        "def half(xs):\n    return [x / 2 + 1e-9 for x in xs]\n": True,  # floats within 1e-6
        "def half(xs):\n    return [x / 2 for x in xs] if xs else None\n": False,  # [] is not floats: exact
        "def half(xs):\n    return [x / 2 for x in xs] or 0\n": False,
        "def half(xs):\n    return tuple(x / 2 for x in xs)\n": False,  # allclose would accept; the type differs
        "def half(xs):\n    return [[x / 2 for x in xs]]\n": False,  # allclose would broadcast; the length differs
        "def half(xs):\n    return [x / 2 + 1e-3 for x in xs]\n": False,
    }
    scores = score_all(sandbox_url, [problem] * len(answers), list(answers))
    assert [s.passed for s in scores] == list(answers.values()), [s.failure for s in scores]


def test_livecodebench_comparison_rules(sandbox_url: str) -> None:
    """Trailing spaces and blank lines do not matter; numbers compare as decimals; functional results compare
    with tuples as lists; one wrong token fails."""
    stdin = BenchProblem(id="t/stdin", dataset="t", prompt="", hidden=livecodebench([{
        "question_id": "x", "question_content": "Print the halves.", "starter_code": "", "contest_date": "",
        "public_test_cases": json.dumps([{"input": "3\n", "output": "1.50\n2\n", "testtype": "stdin"}]),
        "metadata": "{}"}])[0].hidden)
    functional = BenchProblem(id="t/fn", dataset="t", prompt="", hidden=livecodebench([{
        "question_id": "y", "question_content": "Pair.", "starter_code": "class Solution:\n    def pair(self, a):",
        "contest_date": "", "public_test_cases": json.dumps([{"input": "[1, 2]", "output": "[2, 1]",
                                                               "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "pair"})}])[0].hidden)
    cases = [
        (stdin, "n = int(input())\nprint(n / 2, '   ')\nprint(2.0)\nprint()\n", True),
        (stdin, "print('1.5')\nprint('2')\n", True),
        (stdin, "print('1.5 ')\nprint('3')\n", False),
        (functional, "class Solution:\n    def pair(self, a):\n        return (a[1], a[0])\n", True),
        (functional, "class Solution:\n    def pair(self, a):\n        return [a[0], a[1]]\n", False),
    ]
    scores = score_all(sandbox_url, [p for p, _, _ in cases], [c for _, c, _ in cases])
    assert [s.passed for s in scores] == [want for _, _, want in cases]


@needs_data
def test_the_datasets_command_lists_every_dataset_with_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    from atlas_bench.__main__ import main

    with pytest.raises(SystemExit) as ended:
        main(["datasets", "--data-path", str(DATA), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert ended.value.code == 0
    assert {r["dataset"]: r["problems"] for r in rows} == {
        "humaneval": 164, "humanevalplus": 164, "humanevalplus-native": 164, "humanevalplus-mini": 164, "mbpp": 500,
        "mbpp-sanitized": 257, "mbppplus": 378, "livecodebench": 400}
    assert [r["pinned"] for r in rows] == [True] * 7 + [False]
