"""``atlas task``: durable tasks through the platform's ``/v1/tasks``.

    atlas task submit problem.txt --tests tests.py --follow > solution.py
    atlas task show ID | follow ID | cancel ID | list

``submit`` prints the task id (or, with ``--follow``, the events on stderr as they come and the final code on
stdout). Exit status: 0 done (for ``submit --follow`` and ``follow``: verified), 1 finished without a verified
answer, 2 a usage error, 3 the platform unreachable or answering an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.solve import (
    LANGUAGES,
    TIMEOUT,
    SolveRejected,
    _count,
    _error_message,
    _events,
    _read,
    _say,
    _seconds,
    api_key,
    base_url,
    client_arguments,
    load_tests,
)
from atlas_core.settings import SettingsError


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    prompt = _read(args.file, "problem file")
    if not prompt.strip():
        raise SettingsError(f"the problem file {args.file} is empty")
    budget = {"k": args.k, "max_tokens": args.max_tokens, "repair_rounds": args.repair_rounds}
    body = {"prompt": prompt, "language": args.language, "entry_point": args.entry_point,
            "tests": load_tests(args.tests) if args.tests else None, "priority": args.priority,
            "max_attempts": args.max_attempts, "deadline_s": args.deadline,
            "budget": {k: v for k, v in budget.items() if v is not None} or None}
    return {k: v for k, v in body.items() if v is not None}


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with httpx.Client(timeout=TIMEOUT) as client:
                response = client.request(method, f"{self.url}{path}", headers=self.headers, **kwargs)
        except httpx.ConnectError:
            raise SolveRejected(f"llm-proxy is not reachable at {self.url}: is ATLAS up (`atlas status`)?") from None
        except httpx.HTTPError as exc:
            raise SolveRejected(f"the answer from {self.url} broke off ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise SolveRejected(f"the platform answered {response.status_code}: {_error_message(response)}")
        return response.json()

    def follow(self, task_id: str) -> None:
        """Print the task's events on stderr until it is done."""
        try:
            with httpx.Client(timeout=TIMEOUT) as client, client.stream(
                    "GET", f"{self.url}/v1/tasks/{task_id}/events", headers=self.headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise SolveRejected(f"the platform answered {response.status_code}: "
                                        f"{_error_message(response)}")
                for event in _events(response):
                    _say(describe(event))
                    if event.get("type") == "done":
                        return
        except httpx.ConnectError:
            raise SolveRejected(f"llm-proxy is not reachable at {self.url}") from None
        except httpx.HTTPError as exc:
            raise SolveRejected(f"the event stream broke off ({type(exc).__name__}); `atlas task follow "
                                f"{task_id}` resumes it") from None


def describe(event: dict[str, Any]) -> str:
    kind = event.get("type", "event")
    if kind == "done":
        return f"done: {event.get('status')} ({event.get('stop_reason')})" + (
            f": {event['message']}" if event.get("message") else "")
    if event.get("message"):
        return f"{kind}: {event['message']}"
    if kind == "started":
        return f"started on {event.get('worker')} (delivery {event.get('delivery')})"
    if kind in ("passed", "failed"):
        return f"attempt {event.get('n')} {kind}: {event.get('summary')}"
    return f"{kind}: {json.dumps({k: v for k, v in event.items() if k != 'type'})}"


def finish(task: dict[str, Any], as_json: bool) -> int:
    """Print a finished task (code on stdout, the outcome on stderr); the exit status."""
    result = task.get("result") or {}
    if as_json:
        print(json.dumps(task, indent=2))
    elif result.get("code"):
        code = str(result["code"])
        sys.stdout.write(code if code.endswith("\n") else code + "\n")
    _say(f"{task.get('status')} ({task.get('stop_reason')}): {task.get('message') or ''}".rstrip(": "))
    return 0 if task.get("status") == "succeeded" else 1


def run(args: argparse.Namespace, state_dir: Path) -> int:
    body = request_body(args) if args.action == "submit" else None
    client = Client(base_url(args), api_key(args, state_dir))
    try:
        if args.action == "submit":
            task_id = client.call("POST", "/v1/tasks", json=body)["task_id"]
            if not args.follow:
                print(task_id)
                return 0
            _say(f"task {task_id}")
            client.follow(task_id)
            return finish(client.call("GET", f"/v1/tasks/{task_id}"), args.json)
        if args.action == "list":
            for task in client.call("GET", "/v1/tasks", params={"limit": args.limit})["data"]:
                print(f"{task['task_id']}  {task['status']:<9}  {task['priority']}  {task.get('stop_reason') or ''}")
            return 0
        if args.action == "cancel":
            answer = client.call("DELETE", f"/v1/tasks/{args.id}")
            _say(f"{answer['status']}: {answer['message']}")
            return 0
        if args.action == "follow":
            client.follow(args.id)
            return finish(client.call("GET", f"/v1/tasks/{args.id}"), args.json)
        task = client.call("GET", f"/v1/tasks/{args.id}")
        print(json.dumps(task, indent=2))
        return 0
    except SolveRejected as exc:
        print(f"atlas: error: {exc}", file=sys.stderr)
        return 3


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    task: argparse.ArgumentParser = sub.add_parser(
        "task", parents=[common], help="submit, follow, show, cancel or list durable tasks",
        description="Durable tasks (POST /v1/tasks): the verify-repair loop runs on the task-workers, survives "
        "restarts, and can be followed or cancelled from anywhere. Exit status: 0 done (verified, for --follow "
        "and follow), 1 finished unverified, 2 usage error, 3 platform unreachable or error.")
    shared = client_arguments(argparse.ArgumentParser(add_help=False))
    shared.add_argument("--json", action="store_true", help="print the whole task as JSON instead of the code")
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = actions.add_parser("submit", parents=[shared], help="queue a problem (prints the task id)")
    submit.add_argument("file", help="the problem statement ('-': standard input)")
    submit.add_argument("--tests", metavar="FILE", help="tests: a JSON list of {assert}|{input, output}|{args, "
                        "expected} objects, or a Python file of top-level asserts (default: the prompt's examples)")
    submit.add_argument("--language", choices=LANGUAGES, default="python")
    submit.add_argument("--entry-point", help="the function the tests call (default: found by rag-api)")
    submit.add_argument("--priority", choices=["p0", "p1", "p2"], default="p1", help="p0 first (default p1)")
    submit.add_argument("--max-attempts", type=_count(1), help="attempts before giving up")
    submit.add_argument("--deadline", type=_seconds, metavar="SECONDS", help="wall-clock limit from submission")
    submit.add_argument("--k", type=_count(1), help="candidates of the first attempt (later ones get more)")
    submit.add_argument("--max-tokens", type=_count(1), help="completion tokens per candidate")
    submit.add_argument("--repair-rounds", type=_count(0), help="repair rounds within each attempt")
    submit.add_argument("--follow", action="store_true", help="print events until done, then the code")
    for name, what in (("show", "print a task as JSON"), ("follow", "print a task's events until it is done"),
                       ("cancel", "cancel a task")):
        one = actions.add_parser(name, parents=[shared], help=what)
        one.add_argument("id", help="the task id")
    listing = actions.add_parser("list", parents=[shared], help="your most recent tasks")
    listing.add_argument("--limit", type=_count(1), default=20)
    return task
