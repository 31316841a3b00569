"""Benchmark datasets as problems (problems.py): HumanEval, HumanEval+, MBPP, MBPP+, LiveCodeBench
(livecodebench.py) and the project's own JSONL format, read from local files (sources.py) with their hashes
checked. The known dataset fixes (``../shared/datasets/README.md``) are applied here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atlas_bench.livecodebench import TESTTYPES, load_livecodebench
from atlas_bench.problems import MODES, BenchProblem, DatasetError, Hidden, Loaded
from atlas_bench.sources import MBPP_SPLITS, SOURCES, fetch, read_rows, sha256_of

# HumanEval+ and MBPP+ in their self-contained form run every base and plus input in one test program (hundreds
# of calls): 6 s per *program* would fail correct solutions of the heavy tasks (HumanEval/139's canonical one
# takes longer). EvalPlus limits each input by the reference's time instead; one limit for the program is ours.
PLUS_TIMEOUT_S = 60.0


def humaneval(rows: list[dict[str, Any]], name: str = "humaneval") -> list[BenchProblem]:
    """The prompt (signature and docstring, whose examples rag-api parses as the public tests); hidden: the
    ``check(candidate)`` test run on the entry point."""
    out = []
    for r in rows:
        test = r["test"]
        if name == "humanevalplus" and r["task_id"] == "HumanEval/32":
            # The published line raises TypeError for every candidate (dataset README): the intended check.
            test = test.replace("assert _poly(*candidate(*inp), inp) <= 0.0001",
                                "assert abs(_poly(*inp, candidate(*inp))) <= 0.0001")
        timeout = PLUS_TIMEOUT_S if name == "humanevalplus" else 6.0
        out.append(BenchProblem(id=r["task_id"], dataset=name, prompt=r["prompt"], entry_point=r["entry_point"],
                                hidden=Hidden("assert", [{"code": f"{test}\ncheck({r['entry_point']})\n"}],
                                              timeout_s=timeout),
                                canonical=r["prompt"] + r["canonical_solution"]))
    return out


# EvalPlus's native format has inputs only: the expected output is what the reference solution returns for the
# same input. This program (run after the answer, as the hidden test) computes it with the reference in its own
# namespace and compares as EvalPlus's evaluator (evalplus/eval/__init__.py) does: exact; or, when the expected
# value is floats (a float or a non-empty list of floats) or the task has an ``atol``, the same type, the same
# length and np.allclose(rtol=1e-7); find_zero by its special oracle |poly(x)| <= atol. Like EvalPlus, once an
# expected value is floats the 1e-6 tolerance holds for the task's later inputs too.
NATIVE_CHECK = """
import copy as _copy, json as _json
import numpy as _np

def _is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    if isinstance(x, _np.ndarray):
        return x.dtype == _np.float64 or x.dtype == _np.float32
    return False

def _why(n, exp, out):  # only on failure: a huge int's repr alone can raise
    def shown(value):
        try:
            return repr(value)[:300]
        except ValueError:
            return f"<{{type(value).__name__}} too large to show>"
    return f"input {{n}}: expected {{shown(exp)}}, got {{shown(out)}}"

_reference = {{}}
exec(compile({reference!r}, "reference", "exec"), _reference)
_atol = {atol!r}
for _n, _inp in enumerate(_json.loads({inputs!r})):
    _exp = _reference[{entry!r}](*_copy.deepcopy(_inp))
    _out = {entry}(*_copy.deepcopy(_inp))
    if {entry!r} == "find_zero":
        assert abs(_reference["poly"](*_inp, _out)) <= _atol, _why(_n, "a zero of the polynomial", _out)
        continue
    _exact = _out == _exp
    if _atol == 0 and _is_floats(_exp):
        _atol = 1e-6
    if not _exact and _atol != 0:
        assert type(_out) == type(_exp), _why(_n, _exp, _out)
        if isinstance(_exp, (list, tuple)):
            assert len(_out) == len(_exp), _why(_n, _exp, _out)
        assert _np.allclose(_out, _exp, rtol=1e-07, atol=_atol), _why(_n, _exp, _out)
    else:
        assert _exact, _why(_n, _exp, _out)
"""


def humanevalplus_native(rows: list[dict[str, Any]], name: str) -> list[BenchProblem]:
    """HumanEval+ (or its Mini) in EvalPlus's native format: the HumanEval prompt; hidden: every base and plus
    input, scored against the reference solution's output (``NATIVE_CHECK``)."""
    out = []
    for r in rows:
        reference = r["prompt"] + r["canonical_solution"]
        program = NATIVE_CHECK.format(reference=reference, atol=float(r["atol"] or 0), entry=r["entry_point"],
                                      inputs=json.dumps(list(r["base_input"]) + list(r["plus_input"])))
        out.append(BenchProblem(id=r["task_id"], dataset=name, prompt=r["prompt"], entry_point=r["entry_point"],
                                hidden=Hidden("assert", [{"code": program}], timeout_s=PLUS_TIMEOUT_S),
                                canonical=reference))
    return out


def mbpp(rows: list[dict[str, Any]], split: str, sanitized: bool = False) -> list[BenchProblem]:
    """The task text with its first test as the one example a user has (the standard MBPP prompt); hidden: all
    of ``test_list``, after the code and ``test_setup_code`` (that order: tasks 367 and 927 set up with names
    the code defines)."""
    low, high = MBPP_SPLITS[split]
    out = []
    for r in rows:
        task = int(r["task_id"])
        if not low <= task <= high:
            continue
        text = r["prompt"] if sanitized else r["text"]
        setup = "\n".join(r.get("test_imports") or []) if sanitized else r.get("test_setup_code") or ""
        prompt = f"{text}\nYour code should pass this test:\n{r['test_list'][0]}\n"
        out.append(BenchProblem(id=f"mbpp/{task}", dataset="mbpp-sanitized" if sanitized else "mbpp",
                                prompt=prompt, canonical=r["code"],
                                hidden=Hidden("assert", [{"code": t} for t in r["test_list"]], setup=setup)))
    return out


def mbppplus(rows: list[dict[str, Any]]) -> list[BenchProblem]:
    """MBPP+ in its self-contained form: the task text with its first original assert; hidden: the plus
    test program (base and plus inputs, exact or tolerant comparison) after the test imports."""
    out = []
    for r in rows:
        first = r["test_list"][0] if r.get("test_list") else ""
        text = r["prompt"].strip().strip('"').strip()
        prompt = text if "assert" in text else f"{text}\nYour code should pass this test:\n{first}\n"
        task = str(r["task_id"])
        out.append(BenchProblem(id=task if task.startswith("Mbpp/") else f"Mbpp/{task}", dataset="mbppplus",
                                prompt=prompt + "\n",
                                hidden=Hidden("assert", [{"code": r["test"]}],
                                              setup="\n".join(r.get("test_imports") or []), timeout_s=PLUS_TIMEOUT_S),
                                canonical=r["code"]))
    return out


def custom(rows: list[dict[str, Any]], name: str) -> list[BenchProblem]:
    """The project's own JSONL format (docs/benchmark.md): one problem a line."""
    out = []
    for n, r in enumerate(rows, 1):
        try:
            hidden = r["hidden"]
            out.append(BenchProblem(
                id=str(r["id"]), dataset=name, prompt=str(r["prompt"]), language=str(r.get("language", "python")),
                entry_point=r.get("entry_point"), public_tests=list(r.get("public_tests") or []),
                hidden=Hidden(hidden["mode"], list(hidden["tests"]), str(hidden.get("setup") or ""),
                              hidden.get("func_name")),
                difficulty=r.get("difficulty"), canonical=r.get("canonical_solution")))
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{name} line {n}: missing or malformed field {exc}; see docs/benchmark.md") from None
        if out[-1].hidden.mode not in MODES or not out[-1].hidden.tests:
            raise DatasetError(f"{name} line {n}: hidden.mode must be assert, stdin or functional, with tests")
    return out


DATASETS = ("humaneval", "humanevalplus", "humanevalplus-native", "humanevalplus-mini", "mbpp", "mbpp-sanitized",
            "mbppplus", "livecodebench")


def load(dataset: str, data_dir: Path, *, split: str = "test", download: bool = False, allow_unpinned: bool = False,
         since: str | None = None, until: str | None = None, file: Path | None = None,
         release: str = "release_v1", testtype: str | None = None) -> Loaded:
    """Problems of ``dataset`` (or of a custom JSONL ``file``), with the hash of every file read. ``testtype``
    (``stdin`` or ``functional``) keeps only LiveCodeBench's problems of that kind, or a custom file's whose
    hidden tests have that mode."""
    if testtype is not None and file is None and dataset != "livecodebench":
        raise DatasetError(f"a test type ({testtype}) selects LiveCodeBench's or a custom file's problems; "
                           f"{dataset} has assert tests only")
    if file is not None:
        if testtype is not None and testtype not in TESTTYPES:
            raise DatasetError(f"unknown test type {testtype!r}: one of {', '.join(TESTTYPES)}")
        problems = [p for p in custom(read_rows(file), file.stem) if testtype in (None, p.hidden.mode)]
        return Loaded(problems, {str(file): sha256_of(file)})
    if dataset == "livecodebench":
        return load_livecodebench(data_dir, release, download, since, until, testtype)
    if dataset not in SOURCES:
        raise DatasetError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}, or --file for a custom "
                           "JSONL file")
    if dataset.startswith("mbpp") and dataset != "mbppplus" and split not in MBPP_SPLITS:
        raise DatasetError(f"unknown MBPP split {split!r}: one of {', '.join(MBPP_SPLITS)}")
    source = SOURCES[dataset]
    path = fetch(source, data_dir, download)
    digest = sha256_of(path)
    unpinned = []
    if source.sha256 is not None and digest != source.sha256:
        if not allow_unpinned:
            raise DatasetError(f"{path} has SHA-256 {digest}, not the pinned release's {source.sha256}: results "
                               "would not compare; pass --allow-unpinned to use it anyway (recorded as such)")
        unpinned.append(source.path)
    rows = read_rows(path)
    if dataset in ("humaneval", "humanevalplus"):
        problems = humaneval(rows, dataset)
    elif dataset.startswith("humanevalplus-"):
        problems = humanevalplus_native(rows, dataset)
    elif dataset == "mbppplus":
        problems = mbppplus(rows)
    else:
        problems = mbpp(rows, split, sanitized=dataset == "mbpp-sanitized")
    return Loaded(problems, {source.path: digest}, unpinned)
