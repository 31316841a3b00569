"""Every language and every judging mode, through the real service."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Sandbox

HELLO = {
    "python": ("print(input()[::-1])", "import sys\nprint(sys.stdin.read().strip()[::-1]"),
    "javascript": ("const s=require('fs').readFileSync(0,'utf8').trim();console.log([...s].reverse().join(''))",
                   "console.log((;"),
    "c": ("#include <stdio.h>\n#include <string.h>\nint main(){char s[100];scanf(\"%99s\",s);"
          "for(int i=strlen(s)-1;i>=0;i--)putchar(s[i]);puts(\"\");}", "int main(){ return x; }"),
    "cpp": ("#include <iostream>\n#include <algorithm>\nint main(){std::string s;std::cin>>s;"
            "std::reverse(s.begin(),s.end());std::cout<<s<<std::endl;}", "int main(){ std::cout << ; }"),
    "rust": ("use std::io::Read;\nfn main(){let mut s=String::new();std::io::stdin().read_to_string(&mut s)"
             ".unwrap();println!(\"{}\",s.trim().chars().rev().collect::<String>());}",
             "fn main() { let x: i32 = \"a\"; }"),
    "bash": ("read s; echo \"$s\" | rev", "if then fi ("),
}
SYNTAX = {"python": "SyntaxError", "javascript": "SyntaxError", "bash": "SyntaxError", "c": "CompileError",
          "cpp": "CompileError", "rust": "CompileError"}


def test_every_language_is_installed(sandbox: Sandbox) -> None:
    service = sandbox.settings.metrics_token.get_secret_value()
    response = sandbox.client.get("/languages", headers={"Authorization": f"Bearer {service}"})
    assert response.status_code == 200
    body = response.json()
    assert set(body["languages"]) == set(HELLO)
    assert all(entry["version"] for entry in body["languages"].values())
    assert body["isolation"] == "bwrap" and body["seccomp"] is True
    assert sandbox.client.get("/languages").status_code == 401


@pytest.mark.parametrize("language", sorted(HELLO))
def test_language_judged_on_stdin_with_a_compile_error_kept_apart(sandbox: Sandbox, language: str) -> None:
    good, broken = HELLO[language]
    out = sandbox.judge(language=language, mode="stdin", candidates=[{"code": good, "id": "good"},
                                                                     {"code": broken, "id": "broken"}],
                        tests=[{"input": "abc\n", "output": "cba"}, {"input": "hello\n", "output": "olleh\n"},
                               {"input": "xy\n", "output": "wrong"}], stop_on_first_failure=False)
    first, second = out["candidates"]
    assert first["id"] == "good" and first["verdict"] == "TestFailure"
    assert (first["tests_passed"], first["tests_run"], first["tests_total"]) == (2, 3, 3)
    assert first["first_failure"]["test_index"] == 2 and first["first_failure"]["got"].strip() == "yx"
    assert second["verdict"] == SYNTAX[language] and second["compile_output"]
    assert out["first_passing"] is None


def test_runtime_error_is_not_a_wrong_answer(sandbox: Sandbox) -> None:
    out = sandbox.judge(mode="stdin", candidates=[{"code": "raise ValueError('boom')"}],
                        tests=[{"input": "", "output": ""}])
    cand = out["candidates"][0]
    assert cand["verdict"] == "RuntimeError" and "ValueError: boom" in cand["first_failure"]["error"]


def test_functional_mode_calls_solution_methods_and_functions(sandbox: Sandbox) -> None:
    leetcode = ("class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
                "        seen = {}\n        for i, n in enumerate(nums):\n"
                "            if target - n in seen:\n                return (seen[target - n], i)\n"
                "            seen[n] = i\n")
    plain = "def twoSum(nums, target):\n    return [0, 1]\n"
    tests = [{"input": "[2, 7, 11, 15]\n9", "output": "[0, 1]"}, {"input": "[3, 2, 4]\n6", "output": "[1, 2]"}]
    out = sandbox.judge(mode="functional", func_name="twoSum", candidates=[{"code": leetcode}, {"code": plain}],
                        tests=tests)
    assert out["candidates"][0]["verdict"] == "passed"  # a tuple result equals a list, as in LiveCodeBench
    assert out["candidates"][1]["verdict"] == "TestFailure"
    assert out["candidates"][1]["first_failure"]["got"] == "[0, 1]"


def test_functional_mode_needs_a_function_name(sandbox: Sandbox) -> None:
    response = sandbox.post("/judge", {"mode": "functional", "candidates": [{"code": "x=1"}],
                                       "tests": [{"input": "1", "output": "1"}]})
    assert response.status_code == 400 and "func_name" in response.json()["error"]["message"]


HUMANEVAL_TEST = ("METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
                  "    assert candidate(-1, 1) == 0\n\ncheck(add)\n")


def test_assert_mode_runs_each_test_program(sandbox: Sandbox) -> None:
    mbpp = [{"code": "assert add(1, 2) == 3"}, {"code": "assert add(2, 2) == 4"}, {"code": "assert add(0, 0) == 1"}]
    out = sandbox.judge(mode="assert", candidates=[{"code": "def add(a, b):\n    return a + b\n"}], tests=mbpp,
                        stop_on_first_failure=False)
    cand = out["candidates"][0]
    assert cand["verdict"] == "TestFailure" and (cand["tests_passed"], cand["tests_run"]) == (2, 3)
    assert "AssertionError" in cand["first_failure"]["error"]
    human = sandbox.judge(mode="assert", candidates=[{"code": "def add(a, b):\n    return a + b\n"}],
                          tests=[{"code": HUMANEVAL_TEST}])
    assert human["candidates"][0]["verdict"] == "passed"


def test_assert_mode_setup_comes_after_the_code(sandbox: Sandbox) -> None:
    # MBPP tasks 367 and 927: the setup uses names the code defines
    out = sandbox.judge(mode="assert", candidates=[{"code": "class Node:\n    pass\ndef f(n):\n    return 1\n"}],
                        setup="root = Node()", tests=[{"code": "assert f(root) == 1"}])
    assert out["candidates"][0]["verdict"] == "passed"


def test_assert_mode_in_javascript(sandbox: Sandbox) -> None:
    out = sandbox.judge(language="javascript", mode="assert",
                        candidates=[{"code": "function add(a,b){return a+b}"}, {"code": "function add(a,b){return a}"}],
                        tests=[{"code": "const assert = require('assert'); assert.strictEqual(add(1, 2), 3);"}])
    assert [c["verdict"] for c in out["candidates"]] == ["passed", "TestFailure"]


def test_pytest_mode_counts_files(sandbox: Sandbox) -> None:
    test_file = "from solution import add\n\ndef test_one():\n    assert add(1, 2) == 3\n\n" \
                "def test_two():\n    assert add(1, 1) == 2\n"
    out = sandbox.judge(mode="pytest", candidates=[{"code": "def add(a, b):\n    return a + b\n"},
                                                    {"code": "def add(a, b):\n    return a * b\n"}],
                        tests=[{"code": test_file}])
    assert out["candidates"][0]["verdict"] == "passed"
    assert out["candidates"][1]["verdict"] == "TestFailure"
    assert "assert" in out["candidates"][1]["first_failure"]["error"]


def test_modes_that_need_python_refuse_other_languages(sandbox: Sandbox) -> None:
    response = sandbox.post("/judge", {"mode": "pytest", "language": "c", "candidates": [{"code": "int main(){}"}],
                                       "tests": [{"code": "x"}]})
    assert response.status_code == 400 and "stdin mode" in response.json()["error"]["message"]


def _many(n: int) -> list[dict[str, Any]]:
    return [{"input": f"{i}\n", "output": str(2 * i)} for i in range(n)]


def test_stop_at_the_first_failure_and_at_the_first_pass(sandbox: Sandbox) -> None:
    wrong_early = "x = int(input())\nprint(2 * x if x != 1 else 0)"
    out = sandbox.judge(mode="stdin", candidates=[{"code": wrong_early}], tests=_many(40))
    cand = out["candidates"][0]
    assert cand["verdict"] == "TestFailure" and cand["first_failure"]["test_index"] == 1
    assert cand["tests_run"] < 40  # launching stopped at the failure

    right = "print(2 * int(input()))"
    slow = "import time\ntime.sleep(1.5)\nprint(2 * int(input()))"
    out = sandbox.judge(mode="stdin", candidates=[{"code": right}, {"code": slow}], tests=_many(3),
                        stop_on_first_pass=True)
    assert out["first_passing"] == 0
    assert out["candidates"][1]["verdict"] == "Skipped"


def test_global_deadline_skips_what_it_cuts(sandbox: Sandbox) -> None:
    slow = "import time\ntime.sleep(0.6)\nprint(2 * int(input()))"
    out = sandbox.judge(mode="stdin", candidates=[{"code": slow}], tests=_many(20), deadline_s=1.0)
    cand = out["candidates"][0]
    assert out["deadline_hit"] is True and cand["verdict"] == "Skipped", cand["first_failure"]["error"]
    assert 0 < cand["tests_run"] < 20 and cand["tests_passed"] == cand["tests_run"]
    assert out["elapsed_ms"] < 4000


def test_verdicts_are_cached_by_code_tests_and_limits(sandbox: Sandbox) -> None:
    body = {"mode": "stdin", "candidates": [{"code": "print(2 * int(input()))  # cache"}], "tests": _many(3)}
    first = sandbox.judge(**body)
    again = sandbox.judge(**body)
    other = sandbox.judge(**{**body, "limits": {"memory_mb": 100}})
    assert first["candidates"][0]["cached"] is False
    assert again["candidates"][0]["cached"] is True and again["candidates"][0]["verdict"] == "passed"
    assert other["candidates"][0]["cached"] is False


def test_execute_contract(sandbox: Sandbox) -> None:
    out = sandbox.execute("import sys\nprint('out'); print('err', file=sys.stderr)", timeout=5)
    assert set(out) >= {"success", "compile_success", "tests_run", "tests_passed", "lint_score", "stdout", "stderr",
                        "error_type", "error_message", "execution_time_ms"}
    assert (out["success"], out["stdout"], out["stderr"].strip(), out["error_type"]) == (True, "out\n", "err", None)
    bad = sandbox.execute("def f(:\n    pass")
    assert (bad["compile_success"], bad["error_type"]) == (False, "SyntaxError")
    assert "SyntaxError" in bad["error_message"] and "ast.py" not in bad["error_message"]
    tested = sandbox.execute("def add(a, b):\n    return a + b\n",
                             test_code="assert add(1, 2) == 3\nassert add(2, 2) == 5\nassert add(0, 0) == 0\n")
    assert (tested["tests_run"], tested["tests_passed"], tested["error_type"]) == (3, 2, "TestFailure")
    clean = '"""Adds."""\n\n\ndef add(first, second):\n    """Add."""\n    return first + second\n'
    linted = sandbox.execute(clean, lint=True)
    assert linted["lint_score"] == 10.0
    assert sandbox.execute("import os\nx=1", lint=True)["lint_score"] < 10.0
    stdin = sandbox.execute("print(sum(map(int, input().split())))", stdin="1 2 3\n")
    assert stdin["stdout"] == "6\n"
    files = sandbox.execute("import helper\nprint(helper.VALUE)", files={"helper.py": "VALUE = 42\n",
                                                                         "data/in.txt": "x"})
    assert files["stdout"] == "42\n"
