"""LiveCodeBench code_generation_lite: its release files, the prompt its own harness writes, its private tests
(decoded without running anything) and the offline public-only copy that stands in for release_v1.

What is hidden: the problem's public tests followed by its private ones. The full release files carry both; the
offline copy (``release_v1_public.jsonl.gz``) has no private tests, so there the hidden tests are exactly the
public ones (``Loaded.public_only``)."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

from atlas_bench.problems import BenchProblem, DatasetError, Hidden, Loaded
from atlas_bench.sources import LCB_OFFLINE_V1, LCB_URL, SOURCES, DatasetSource, fetch, lcb_files, read_rows, sha256_of

LCB_STDIN = "Read the inputs from stdin, solve the problem and write the answer to stdout (do not directly test " \
            "on the sample inputs)."
LCB_FUNCTIONAL = "You will use the following starter code to write the solution to the problem:"
TESTTYPES = ("stdin", "functional")  # LiveCodeBench's own names of its two kinds of problem


def decode_private_tests(encoded: str) -> list[dict[str, Any]]:
    """LiveCodeBench's ``private_test_cases``: plain JSON, or base64 → zlib → pickle of a JSON string. The
    pickle is read with an unpickler that refuses every class and function, so only plain values (here: one
    string) can come out of it; anything else is an error, never code run."""
    text = encoded.strip()
    if text.startswith("["):
        tests = json.loads(text)
    else:
        raw = zlib.decompress(base64.b64decode(text))
        value = _PlainUnpickler(io.BytesIO(raw)).load()
        if not isinstance(value, str):
            raise DatasetError(f"private tests decode to {type(value).__name__}, not a JSON string")
        tests = json.loads(value)
    if not isinstance(tests, list) or not all(isinstance(t, dict) and "input" in t and "output" in t for t in tests):
        raise DatasetError("private tests are not a list of {input, output} objects")
    return tests


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain values are allowed")


def livecodebench(rows: list[dict[str, Any]], since: str | None = None, until: str | None = None,
                  testtype: str | None = None) -> list[BenchProblem]:
    """The statement (with its samples) and the starter code, as LiveCodeBench's harness prompts; public tests
    sent as the user's; hidden: public and private tests (private ones decoded, when the file has them), stdin or
    functional. ``testtype`` keeps only the problems of that kind (``stdin``: whole programs, ``functional``:
    a method of the starter code's class)."""
    out = []
    for r in rows:
        date = str(r.get("contest_date") or "")[:10]
        if (since and date < since) or (until and date > until):
            continue
        public = json.loads(r["public_test_cases"]) if isinstance(r["public_test_cases"], str) else r[
            "public_test_cases"]
        functional = bool(public) and public[0].get("testtype") == "functional"
        if testtype is not None and testtype != ("functional" if functional else "stdin"):
            continue
        private = decode_private_tests(r["private_test_cases"]) if r.get("private_test_cases") else []
        metadata = json.loads(r.get("metadata") or "{}")
        func_name = metadata.get("func_name") if functional else None
        prompt = r["question_content"].strip() + "\n\n"
        if r.get("starter_code"):
            prompt += f"{LCB_FUNCTIONAL}\n```python\n{r['starter_code']}\n```\n"
        else:
            prompt += LCB_STDIN + "\n"
        tests = [{"input": t["input"], "output": t["output"]} for t in public + private]
        if functional:
            shown = [{"args": [json.loads(x) for x in t["input"].split("\n") if x.strip()],
                      "expected": json.loads(t["output"])} for t in public]
        else:
            shown = [{"input": t["input"], "output": t["output"]} for t in public]
        out.append(BenchProblem(id=f"lcb/{r['question_id']}", dataset="livecodebench", prompt=prompt,
                                hidden=Hidden("functional" if functional else "stdin", tests, func_name=func_name),
                                public_tests=shown, entry_point=func_name, difficulty=r.get("difficulty"),
                                contest_date=date or None, statement=r["question_content"].strip()))
    return out


def load_livecodebench(data_dir: Path, release: str, download: bool, since: str | None, until: str | None,
                       testtype: str | None = None) -> Loaded:
    if testtype is not None and testtype not in TESTTYPES:
        raise DatasetError(f"unknown LiveCodeBench test type {testtype!r}: one of {', '.join(TESTTYPES)}")
    rows: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    names = lcb_files(release)
    public_only = False
    if names == ["livecodebench/test.jsonl"] and not (data_dir / names[0]).is_file() and not download and (
            data_dir / LCB_OFFLINE_V1).is_file():
        # Offline, release_v1 only: the public-only copy stands in, and the results say so (its "hidden"
        # tests are the public ones). Never mixed with the full files of later releases.
        names, public_only = [LCB_OFFLINE_V1], True
    for name in names:
        source = SOURCES["livecodebench"] if public_only else DatasetSource(
            name, LCB_URL + name.removeprefix("livecodebench/"), None)
        path = fetch(source, data_dir, download)
        files[source.path] = sha256_of(path)
        rows += read_rows(path)
    return Loaded(livecodebench(rows, since, until, testtype), files, public_only=public_only)
