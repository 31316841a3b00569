"""The programs a mode runs inside the sandbox around the candidate's code.

Each ends by printing a marker line that carries a per-run random nonce: a program that exits 0 early
(``sys.exit(0)``, ``os._exit(0)``, ``process.exit(0)``) never reaches the marker. The nonce is never in a file
of the work directory, which the candidate can read: it arrives as the first line of stdin, read by a harness
before the candidate's code runs, and the marker goes out through stdout as it was before that code ran.

- Python harnesses (``run.py``, ``harness.py``) read it with ``sys.stdin.readline()`` (the program reads the
  rest of stdin from the same ``sys.stdin``) and keep a dup of fd 1, so closing ``sys.stdout`` does not lose
  the marker; both are locals of a function, not globals of ``__main__`` the program could import.
- pytest (``PYTEST_PLUGIN``, loaded with ``-p``): pytest imports ``-p`` plugins while it pre-parses its
  arguments, before its capture plugin points fd 0 at /dev/null and fd 1 at a temporary file (in
  ``pytest_load_initial_conftests``, which loads the conftest files: a conftest.py would come too late to see
  stdin). The plugin reads the nonce a byte at a time and dups fd 1 at import, and writes marker and counts
  through the dup when the session finishes.
- JavaScript (``run.js``) reads it from fd 0 a byte at a time, then ``require()``s the file holding the
  candidate's code and the test, then writes the marker with ``fs.writeSync(1, ...)``.

Code in the same Python process could still dig the nonce out of a harness's frame or closure, or tamper with
pytest itself (JavaScript offers no way to name another function's locals); that needs a deliberate attack,
which the isolation, not the verdict, is there to contain.
"""

from __future__ import annotations

import secrets
import textwrap

# LiveCodeBench prepends these imports to functional (LeetCode-style) solutions, which use List[int] unimported.
LCB_PRELUDE = """\
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from statistics import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from builtins import *
from typing import *
import string
import re
import datetime
import collections
import heapq
import bisect
import copy
import math
import random
import statistics
import itertools
import functools
import operator
import io
import sys
import json
sys.setrecursionlimit(50000)
"""


# Every Python harness starts by taking the nonce and a copy of stdout, and ends by writing the marker (plus a
# JSON payload) through that copy, whatever the program did to sys.stdout. All of it runs inside a function
# (``_in_function``): as globals of ``__main__``, the program could simply ``import __main__`` and read them.
_NONCE_IN = """\
import os, sys
_tag = sys.stdin.readline().strip()
_out = os.dup(1)
"""
_MARKER_OUT = """\
try:
    sys.stdout.flush()
except (OSError, ValueError):  # the program closed it
    pass
os.write(_out, ("\\n__ATLAS_" + _tag + "__" + {payload} + "\\n").encode())
"""


def _in_function(body: str) -> str:
    return "def _main():\n" + textwrap.indent(body, "    ") + "\n_main()\n"


def nonce() -> str:
    return secrets.token_hex(12)


def marker(token: str) -> str:
    return f"__ATLAS_{token}__"


def python_assert(code: str, setup: str, test: str) -> str:
    """HumanEval / MBPP style: the code, the setup, the test program (run by ``python_runner``)."""
    return f"{code}\n\n{setup}\n\n{test}\n"


def python_runner() -> str:
    """``run.py PROGRAM``: reads the nonce, runs PROGRAM as ``__main__``, then writes the marker."""
    return _in_function(_NONCE_IN + """\
_path = sys.argv[1]
sys.argv = [_path]
with open(_path) as _f:
    _code = compile(_f.read(), _path.rsplit("/", 1)[-1], "exec")
exec(_code, {"__name__": "__main__", "__file__": _path, "__builtins__": __builtins__})
""" + _MARKER_OUT.format(payload='""'))


def javascript_assert(code: str, setup: str, test: str) -> str:
    """One test file: the code, the setup, the test (run by ``javascript_runner``)."""
    return f"{code}\n\n{setup}\n\n{test}\n"


def javascript_runner() -> str:
    """``run.js FILE``: reads the nonce, runs FILE, then writes the marker. ``require()`` is synchronous (an ES
    module graph with top-level await is refused), so the marker can only follow a test that finished; FILE
    sees ``process.argv`` as under ``node FILE``, but is not ``require.main``."""
    return """\
"use strict";
(function () {
  const fs = require("fs");
  const write = fs.writeSync;  // taken before the candidate's code could replace it
  const byte = Buffer.alloc(1);
  let tag = "";
  while (fs.readSync(0, byte, 0, 1, null) === 1 && byte[0] !== 10) {
    tag += String.fromCharCode(byte[0]);
  }
  const file = process.argv[2];
  process.argv.splice(1, 2, file);
  require(file);
  write(1, "\\n__ATLAS_" + tag + "__\\n");
})();
"""


def python_functional(func_name: str) -> str:
    """Calls ``Solution().<func_name>`` (or a top-level function of that name) of ``main.py`` with one JSON
    value per line of stdin (after the nonce line), and writes the result as JSON after the marker."""
    return _in_function(_NONCE_IN + f"""\
import json
_lines = [line for line in sys.stdin.read().split("\\n") if line.strip()]
_args = [json.loads(line) for line in _lines]
_ns = {{"__name__": "__atlas_solution__"}}
with open(__file__.rsplit("/", 1)[0] + "/main.py") as _f:
    _src = _f.read()
exec(compile({LCB_PRELUDE!r} + "\\n" + _src, "main.py", "exec"), _ns)
if "Solution" in _ns and hasattr(_ns["Solution"], {func_name!r}):
    _fn = getattr(_ns["Solution"](), {func_name!r})
elif {func_name!r} in _ns:
    _fn = _ns[{func_name!r}]
else:
    raise SystemExit("no Solution().{func_name} and no function {func_name} in the program")
_result = _fn(*_args)
def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {{k: _plain(x) for k, x in v.items()}}
    return v
""" + _MARKER_OUT.format(payload="json.dumps(_plain(_result))"))


def python_statements(test: str) -> str:
    """For ``/execute`` with assert-style test code: runs ``main.py``, then each top-level ``assert`` or call
    of the test code as one test (other statements are setup), and reports counts after the marker."""
    return _in_function(_NONCE_IN + f"""\
import ast, json, traceback
_ns = {{"__name__": "__main__"}}
_dir = __file__.rsplit("/", 1)[0]
with open(_dir + "/main.py") as _f:
    exec(compile(_f.read(), "main.py", "exec"), _ns)
_tree = ast.parse({test!r}, "tests.py")
_run = _passed = 0
_first = None
for _node in _tree.body:
    _is_test = isinstance(_node, ast.Assert) or (isinstance(_node, ast.Expr) and isinstance(_node.value, ast.Call))
    _code = compile(ast.Module(body=[_node], type_ignores=[]), "tests.py", "exec")
    if not _is_test:
        exec(_code, _ns)
        continue
    _run += 1
    try:
        exec(_code, _ns)
        _passed += 1
    except Exception as _exc:
        if _first is None:
            _first = {{"test": ast.get_source_segment({test!r}, _node), "error": "".join(
                traceback.format_exception_only(type(_exc), _exc)).strip()[-2000:]}}
""" + _MARKER_OUT.format(payload='json.dumps({"run": _run, "passed": _passed, "first": _first})'))


PYTEST_PLUGIN = "_atlas_pytest_report"  # a reserved module name: no candidate file is called that


def pytest_plugin() -> str:
    """The ``-p`` plugin module that reports pytest's counts and first failure after the marker. It holds no
    secret: the nonce comes on stdin. The hooks that count and write the marker are methods of an object made
    in a closure and registered once, from ``pytest_configure``, which pytest calls before it imports any test
    or the candidate's code: module-level hooks would let that code call ``pytest_sessionfinish`` itself."""
    return '''\
import json, os, sys


def _reporter():
    tag = b""
    while not tag.endswith(b"\\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        tag += byte
    out = os.dup(1)
    counts = {"run": 0, "passed": 0, "first": None}

    class Report:
        def pytest_runtest_logreport(self, report):
            if report.skipped:  # skipped and xfail tests are neither passes nor failures
                return
            if report.when == "call" or (report.when in ("setup", "teardown") and report.failed):
                counts["run"] += 1
                if report.passed:
                    counts["passed"] += 1
                elif counts["first"] is None and report.failed:
                    counts["first"] = {"test": report.nodeid, "error": str(report.longrepr)[-2000:]}

        def pytest_sessionfinish(self, session, exitstatus):
            try:
                sys.stdout.flush()
            except (OSError, ValueError):  # the program closed it
                pass
            line = "\\n__ATLAS_" + tag.decode().strip() + "__" + json.dumps(counts) + "\\n"
            os.write(out, line.encode())

    registered = []

    def pytest_configure(config):
        if not registered:
            registered.append(config.pluginmanager.register(Report(), "atlas-report"))

    return pytest_configure


pytest_configure = _reporter()
'''


def find_marker(stdout: str, token: str) -> str | None:
    """The text after the last marker line, or None when the harness never got there."""
    tag = marker(token)
    for line in reversed(stdout.splitlines()):
        if line.startswith(tag):
            return line[len(tag):]
    return None


def strip_marker(stdout: str, token: str) -> str:
    tag = marker(token)
    return "\n".join(line for line in stdout.splitlines() if not line.startswith(tag)).rstrip("\n")
