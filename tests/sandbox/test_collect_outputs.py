"""``collect_outputs`` on /judge, through the real service: every test of every candidate runs, expected outputs
are ignored, and each candidate gets one {status, digest, shown} per test, in order (AlphaCode-style clustering
of candidates by what they print on inputs nobody has answers for)."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import Sandbox

INPUTS = [{"input": f"{i}\n"} for i in (1, 2, 3)]  # no expected outputs at all
FAST = {"timeout_s": 1.0, "cpu_s": 1.0}


def collect(sandbox: Sandbox, candidates: list[str], tests: list[dict[str, Any]] = INPUTS,
            **fields: Any) -> list[dict[str, Any]]:
    out = sandbox.judge(candidates=[{"code": c} for c in candidates], tests=tests, collect_outputs=True,
                        **{"mode": "stdin", **fields})
    return list(out["candidates"])


def statuses(cand: dict[str, Any]) -> list[str]:
    return [o["status"] for o in cand["outputs"]]


def test_same_numbers_formatted_differently_get_equal_digests(sandbox: Sandbox) -> None:
    floats = "x = int(input())\nprint(f'{x}.0')\nprint(f'{2 * x}.50')"
    ints = "x = int(input())\nprint(x)\nprint(f'{2 * x}.5   ')\nprint()"
    other = "x = int(input())\nprint(x + 1)\nprint(2 * x + 0.5)"
    a, b, c = collect(sandbox, [floats, ints, other], stop_on_first_pass=True)  # a pass stops nothing here
    for cand in (a, b, c):
        assert cand["verdict"] == "passed" and cand["tests_run"] == 3 and statuses(cand) == ["ok"] * 3, cand
        assert all(len(o["digest"]) == 24 for o in cand["outputs"])
    assert [o["digest"] for o in a["outputs"]] == [o["digest"] for o in b["outputs"]]
    assert all(x["digest"] != y["digest"] for x, y in zip(a["outputs"], c["outputs"], strict=True))
    # in the tests' order: each entry shows what its own input made the program print
    assert [o["shown"] for o in a["outputs"]] == ["1.0\n2.50\n", "2.0\n4.50\n", "3.0\n6.50\n"]
    assert len({o["digest"] for o in a["outputs"]}) == 3


def test_faults_are_reported_per_test_and_every_test_still_runs(sandbox: Sandbox) -> None:
    crash = "x = int(input())\nprint('before')\nif x == 2:\n    raise ValueError('boom')\nprint(x)"
    slow = "import time\nx = int(input())\nif x == 1:\n    time.sleep(30)\nprint(x)"
    crashing, sleeping = collect(sandbox, [crash, slow], limits=FAST)  # stop_on_first_failure is true by default
    assert statuses(crashing) == ["ok", "RuntimeError", "ok"] and crashing["verdict"] == "RuntimeError"
    assert statuses(sleeping) == ["Timeout", "ok", "ok"] and sleeping["verdict"] == "Timeout"
    for cand in (crashing, sleeping):
        assert cand["tests_run"] == 3 and cand["passed"] is False
        assert [bool(o["digest"]) for o in cand["outputs"]] == [o["status"] == "ok" for o in cand["outputs"]]
    assert crashing["outputs"][1]["shown"] == "before\n"  # what it printed before the fault
    assert crashing["first_failure"]["test_index"] == 1 and crashing["first_failure"]["expected"] is None
    assert "ValueError: boom" in crashing["first_failure"]["error"]
    assert sleeping["outputs"][1]["shown"] == "2\n"


def test_outputs_are_bounded_to_a_digest_and_the_first_300_characters(sandbox: Sandbox) -> None:
    flood = "x = int(input())\nfor _ in range(2000):\n    print(x * 1234567890)"
    (cand,) = collect(sandbox, [flood])
    assert statuses(cand) == ["ok"] * 3
    assert all(len(o["shown"]) == 300 and len(o["digest"]) == 24 for o in cand["outputs"])
    assert cand["outputs"][0]["shown"].startswith("1234567890\n1234567890\n")


def test_tests_cut_by_the_deadline_are_skipped(sandbox: Sandbox) -> None:
    slow = "import time\ntime.sleep(0.6)\nprint(int(input()))"
    # more tests than one wave of workers runs before the deadline, on any machine
    waves = 2 * sandbox.client.app.state.executor.workers + 1  # type: ignore[attr-defined]
    out = sandbox.judge(mode="stdin", candidates=[{"code": slow}], tests=[{"input": f"{i}\n"} for i in range(waves)],
                        collect_outputs=True, deadline_s=1.0)
    cand = out["candidates"][0]
    assert out["deadline_hit"] is True and cand["verdict"] == "Skipped", cand
    # how many ran before the deadline depends on the machine's load; that the rest are Skipped does not
    assert "Skipped" in statuses(cand) and set(statuses(cand)) <= {"ok", "Skipped"}
    for i, o in enumerate(cand["outputs"]):
        assert (o["shown"], bool(o["digest"])) == ((f"{i}\n", True) if o["status"] == "ok" else ("", False))


def test_functional_mode_digests_the_returned_value(sandbox: Sandbox) -> None:
    tuple_float = "def f(a):\n    return (a, a * 1.0)\n"
    plain_list = "class Solution:\n    def f(self, a):\n        return [a, a]\n"
    divides = "def f(a):\n    return [a, 1 // (a - 2)]\n"
    tests = [{"input": "1"}, {"input": "2"}, {"input": "3"}]
    a, b, c = collect(sandbox, [tuple_float, plain_list, divides], tests, mode="functional", func_name="f")
    assert statuses(a) == statuses(b) == ["ok"] * 3 and a["verdict"] == "passed"
    assert [o["digest"] for o in a["outputs"]] == [o["digest"] for o in b["outputs"]]  # tuples as lists, 1.0 == 1
    assert [o["shown"] for o in a["outputs"]] == ["[1, 1.0]", "[2, 2.0]", "[3, 3.0]"]
    assert statuses(c) == ["ok", "RuntimeError", "ok"] and c["verdict"] == "RuntimeError"
    assert c["outputs"][0]["digest"] != a["outputs"][0]["digest"]


def test_a_compile_error_runs_no_output(sandbox: Sandbox) -> None:
    (broken,) = collect(sandbox, ["int main() { return x; }"], language="c")
    assert broken["verdict"] == "CompileError" and broken["outputs"] == [] and broken["tests_run"] == 0


def test_modes_without_outputs_refuse_it_naming_the_field(sandbox: Sandbox) -> None:
    for mode in ("assert", "pytest"):
        response = sandbox.post("/judge", {"mode": mode, "candidates": [{"code": "x = 1"}],
                                           "tests": [{"code": "assert x == 1"}], "collect_outputs": True})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"].startswith("collect_outputs:"), response.text


def test_outputs_are_absent_unless_asked_and_cached_apart(sandbox: Sandbox) -> None:
    code = "print(int(input()) * 3)  # collect cache"
    plain = sandbox.judge(mode="stdin", candidates=[{"code": code}], tests=[{"input": "1\n", "output": "3"}])
    assert plain["candidates"][0]["outputs"] is None and plain["candidates"][0]["verdict"] == "passed"
    first, again = (collect(sandbox, [code], [{"input": "1\n", "output": "3"}])[0] for _ in range(2))
    assert (first["cached"], again["cached"]) == (False, True)  # not the cached result without outputs
    assert first["outputs"] == again["outputs"] and first["outputs"][0]["shown"] == "3\n"
