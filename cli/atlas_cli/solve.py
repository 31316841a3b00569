"""``atlas solve FILE [--tests FILE]``: one verified solve through the platform's ``POST /v1/solve``.

    atlas solve problem.txt --tests tests.py > solution.py

The code goes to stdout and everything else (progress as it arrives, the verification summary, errors) to
stderr, so the answer can be redirected. Exit status: 0 verified, 1 an answer that is not verified (or no code),
2 a usage error (a file that cannot be read, a bad tests file, no API key), 3 the platform unreachable or
answering an error.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.config import connect_host
from atlas_cli.keys import ADMIN_FILE
from atlas_core.settings import SettingsError, conf_path, read_conf
from atlas_proxy.settings import Settings as ProxySettings

LANGUAGES = ["python", "javascript", "c", "cpp", "rust", "bash"]
TEST_FIELDS = {"assert", "input", "output", "args", "expected"}
# A solve can take minutes; rag-api sends progress or keep-alive comments meanwhile, so a long read timeout
# only catches a platform that has gone silent.
TIMEOUT = httpx.Timeout(10.0, read=600.0)


class SolveRejected(Exception):
    """The platform could not be reached or answered an error (exit status 3)."""


def _read(name: str, what: str) -> str:
    try:
        return sys.stdin.read() if name == "-" else Path(name).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SettingsError(f"cannot read the {what} {name}: {reason}") from None


def load_tests(name: str) -> list[dict[str, Any]]:
    """Tests from a JSON file (a list of test objects, or ``{"tests": [...]}``) or a Python file whose top-level
    ``assert`` statements each become one ``{"assert": ...}`` test. A ``.py`` name, or content that does not
    start with ``[`` or ``{``, is read as Python."""
    text = _read(name, "tests file")
    if not name.endswith(".py") and text.lstrip()[:1] in ("[", "{"):
        return _json_tests(text, name)
    return _assert_tests(text, name)


def _json_tests(text: str, name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{name} is not valid JSON: {exc}") from None
    tests = data.get("tests") if isinstance(data, dict) else data
    if not isinstance(tests, list):
        raise SettingsError(f"{name} must hold a list of tests or an object {{\"tests\": [...]}}")
    for number, test in enumerate(tests, 1):
        if not isinstance(test, dict) or not test or not set(test) <= TEST_FIELDS:
            raise SettingsError(f"{name}: test {number} must be one of {{\"assert\": ...}}, "
                                "{\"input\": ..., \"output\": ...} or {\"args\": [...], \"expected\": ...}")
    return tests


def _assert_tests(text: str, name: str) -> list[dict[str, Any]]:
    try:
        tree = ast.parse(text, filename=name)
    except SyntaxError as exc:
        raise SettingsError(f"{name}:{exc.lineno}: not valid Python ({exc.msg}), nor a JSON list of tests") from None
    tests = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring or a string used as a comment
        if not isinstance(node, ast.Assert):
            raise SettingsError(f"{name}:{node.lineno}: only top-level assert statements can be tests; this line "
                                "is not one (the code under test is not in scope: import nothing)")
        tests.append({"assert": ast.get_source_segment(text, node)})
    if not tests:
        raise SettingsError(f"{name} has no assert statements")
    return tests


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    problem = _read(args.file, "problem file")
    if not problem.strip():
        raise SettingsError(f"the problem file {args.file} is empty")
    budget = {"k": args.k, "max_tokens": args.max_tokens, "repair_rounds": args.repair_rounds,
              "deadline_s": args.deadline, "self_tests": False if args.no_self_tests else None}
    body = {"problem": problem, "language": args.language, "entry_point": args.entry_point, "seed": args.seed,
            "tests": load_tests(args.tests) if args.tests else None,
            "budget": {k: v for k, v in budget.items() if v is not None} or None, "stream": True}
    return {k: v for k, v in body.items() if v is not None}


def api_key(args: argparse.Namespace, state_dir: Path) -> str:
    key = args.api_key or os.environ.get("ATLAS_API_KEY")
    if key:
        return str(key)
    try:
        return str(json.loads((state_dir / ADMIN_FILE).read_text())["key"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError(f"no API key: pass --api-key, set ATLAS_API_KEY, or run `atlas up` once (it keeps the "
                            f"first key in {state_dir / ADMIN_FILE})") from None


def base_url(args: argparse.Namespace) -> str:
    """``--url`` (with or without ``/v1``), else the local llm-proxy from the configuration."""
    if args.url:
        return str(args.url).rstrip("/").removesuffix("/v1")
    # Read leniently, like the state directory: config.gather() would refuse ATLAS_API_KEY, which no service reads.
    path = args.conf or conf_path()
    values = (read_conf(path) if path is not None else {}) | {k: v for k, v in os.environ.items() if v}
    port = values.get("ATLAS_PROXY_PORT", str(ProxySettings.model_fields["port"].default))
    return f"http://{connect_host(values.get('ATLAS_PROXY_HOST', '127.0.0.1'))}:{port}"


def _events(response: httpx.Response) -> Iterator[Any]:
    """The JSON payload of each server-sent event, until ``[DONE]``; comments (keep-alives) are skipped."""
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                return
            try:
                yield json.loads(payload)
            except ValueError:
                raise SolveRejected(f"the platform sent an event that is not JSON: {payload[:200]}") from None


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def solve(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stream one solve, showing progress on stderr; the SolveResult."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    try:
        with httpx.Client(timeout=TIMEOUT) as client, \
                client.stream("POST", f"{url}/v1/solve", json=body, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise SolveRejected(f"the platform answered {response.status_code}: {_error_message(response)}")
            for event in _events(response):
                kind = event.get("type") if isinstance(event, dict) else None
                if kind == "progress":
                    stage, message = event.get("stage") or "working", event.get("message")
                    _say(f"{stage}: {message}" if message else str(stage))
                elif kind == "result" and isinstance(event.get("result"), dict):
                    result: dict[str, Any] = event["result"]
                    return result
                elif kind == "error":
                    error = event.get("error")
                    reason = error.get("message") if isinstance(error, dict) else error
                    raise SolveRejected(f"the solve failed: {reason or 'no reason given'}")
    except httpx.ConnectError:
        raise SolveRejected(f"llm-proxy is not reachable at {url}: is ATLAS up (`atlas status`)?") from None
    except httpx.TimeoutException:
        raise SolveRejected(f"llm-proxy at {url} stopped answering") from None
    except httpx.HTTPError as exc:
        raise SolveRejected(f"the answer from {url} broke off or was not understood ({type(exc).__name__})") from None
    raise SolveRejected("the platform ended the stream without a result")


def run(args: argparse.Namespace, state_dir: Path) -> int:
    body = request_body(args)
    key = api_key(args, state_dir)
    try:
        result = solve(base_url(args), key, body)
    except SolveRejected as exc:
        print(f"atlas: error: {exc}", file=sys.stderr)
        return 3
    code = result.get("code")
    if args.json:
        print(json.dumps(result, indent=2))
    elif code:
        sys.stdout.write(code if code.endswith("\n") else code + "\n")
    _say(str(result.get("summary") or result.get("status") or "no summary"))
    return 0 if result.get("verified") is True and code else 1


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more")
        return value

    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    solve: argparse.ArgumentParser = sub.add_parser(
        "solve", parents=[common], help="solve a programming problem with verified code (code on stdout)",
        description="Send a problem to POST /v1/solve and print the selected code on stdout; progress and the "
        "verification summary go to stderr. Exit status: 0 verified, 1 not verified, 2 usage error, "
        "3 platform unreachable or error.")
    solve.add_argument("file", help="the problem statement ('-': standard input)")
    solve.add_argument("--tests", metavar="FILE", help="tests: a JSON list of {assert}|{input, output}|{args, "
                       "expected} objects (or {\"tests\": [...]}), or a Python file of top-level asserts")
    solve.add_argument("--language", choices=LANGUAGES, default="python", help="language of the code (default "
                       "python)")
    solve.add_argument("--entry-point", help="the function the tests call (default: found by rag-api)")
    solve.add_argument("--k", type=_count(1), help="candidates in the first round")
    solve.add_argument("--max-tokens", type=_count(1), help="completion tokens per candidate")
    solve.add_argument("--repair-rounds", type=_count(0), help="repair rounds when nothing passes")
    solve.add_argument("--deadline", type=_seconds, metavar="SECONDS", help="wall-clock limit of the whole solve")
    solve.add_argument("--no-self-tests", action="store_true", help="do not let the model write tests to rank by")
    solve.add_argument("--seed", type=_count(0), help="base seed (candidate i uses seed + i)")
    solve.add_argument("--json", action="store_true", help="print the whole result as JSON instead of the code")
    client_arguments(solve)
    return solve


def client_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The key and the proxy's URL, as every command that calls the platform takes them (``api_key``,
    ``base_url`` read them)."""
    parser.add_argument("--api-key", help="sk-llm- key (default: ATLAS_API_KEY, else the first key `atlas up` "
                        "kept; prefer the environment: other users see arguments in `ps`)")
    parser.add_argument("--url", help="llm-proxy base URL (default: http://127.0.0.1:ATLAS_PROXY_PORT)")
    return parser
