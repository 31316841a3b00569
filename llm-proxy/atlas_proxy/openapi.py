"""The proxy's OpenAPI document. Its routes are plain Starlette (the hot path skips FastAPI's per-request layer), so
FastAPI cannot describe them: this module does, with every input's bound declared, for the bound and fuzz tests
and for clients. It is built on demand (``app.openapi()``), never served. A test checks it names every route."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from atlas_proxy.calls import MAX_TOKENS_CAP

TEXT = 200_000
BUDGET = {"type": "object", "additionalProperties": False, "properties": {
    "k": {"type": "integer", "minimum": 1, "maximum": 20},
    "max_tokens": {"type": "integer", "minimum": 16, "maximum": 8192},
    "repair_rounds": {"type": "integer", "minimum": 0, "maximum": 5},
    "deadline_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    "self_tests": {"type": "boolean"}}}
TEST = {"type": "object", "additionalProperties": False, "properties": {
    "assert": {"type": "string", "maxLength": TEXT}, "input": {"type": "string", "maxLength": TEXT},
    "output": {"type": "string", "maxLength": TEXT},
    # any JSON values, bounded by the body's size; described as integers, the shape fuzzing sends
    "args": {"type": "array", "maxItems": 100, "items": {"type": "integer"}}, "expected": {"type": "integer"}}}
TESTS = {"type": "array", "maxItems": 1000, "items": TEST}
LANGUAGE = {"type": "string", "enum": ["python", "javascript", "c", "cpp", "rust", "bash"]}
MODEL = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"}
COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CAP}
MESSAGE = {"type": "object", "required": ["role"], "properties": {
    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"type": "string", "maxLength": TEXT}}}
STREAM_OPTIONS = {"type": "object", "properties": {"include_usage": {"type": "boolean"}}}
TOOLS = {"type": "array", "maxItems": 128, "items": {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 64},
                                                  "description": {"type": "string", "maxLength": 10_000}}}}}}

CHAT = {"type": "object", "required": ["model", "messages"], "properties": {
    "model": MODEL, "messages": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": MESSAGE},
    "stream": {"type": "boolean"}, "stream_options": STREAM_OPTIONS, "max_tokens": COUNT,
    "max_completion_tokens": COUNT, "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "tools": TOOLS, "user": {"type": "string", "maxLength": 256},
    "atlas": {"type": "object", "additionalProperties": False, "properties": {
        "language": LANGUAGE, "tests": TESTS, "budget": BUDGET, "seed": {"type": "integer", "minimum": 0,
                                                                         "maximum": 2**31 - 1},
        "verify": {"type": "boolean"}, "entry_point": {"type": "string", "maxLength": 200,
                                                       "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}}}}
COMPLETION = {"type": "object", "required": ["model", "prompt"], "properties": {
    "model": MODEL, "prompt": {"type": "string", "maxLength": TEXT}, "stream": {"type": "boolean"},
    "max_tokens": COUNT, "stream_options": STREAM_OPTIONS}}
EMBEDDING = {"type": "object", "required": ["model", "input"], "properties": {
    "model": MODEL, "input": {"anyOf": [{"type": "string", "maxLength": 32_000},
                                        {"type": "array", "maxItems": 512,
                                         "items": {"type": "string", "maxLength": 32_000}}]}}}
SOLVE = {"type": "object", "required": ["problem"], "properties": {
    "problem": {"type": "string", "minLength": 1, "maxLength": TEXT}, "language": LANGUAGE, "tests": TESTS,
    "budget": BUDGET, "stream": {"type": "boolean"}, "model": MODEL,
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}}}
TASK = {"type": "object", "required": ["prompt"], "properties": {
    "prompt": {"type": "string", "minLength": 1, "maxLength": TEXT}, "language": LANGUAGE, "tests": TESTS,
    "priority": {"type": "string", "enum": ["p0", "p1", "p2"]},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
    "deadline_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86_400},
    "project_id": {"type": "string", "maxLength": 200, "pattern": "^[A-Za-z0-9._:-]{1,200}$"},
    "budget": {"type": "object", "additionalProperties": False, "properties": {
        k: v for k, v in BUDGET["properties"].items() if k != "deadline_s"}},  # type: ignore[attr-defined]
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}}}
# Projects (PageIndex code retrieval). rag-api enforces the real limits (ATLAS_PROJECT_*: files per project, bytes per
# file, hostile paths refused, k); these bounds are the most those settings allow, to keep every input finite.
FILE_PATH = {"type": "string", "minLength": 1, "maxLength": 512}
PROJECT = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 200}}}
PROJECT_DIFF = {"type": "object", "required": ["files"], "properties": {
    "files": {"type": "object", "maxProperties": 1_000_000, "propertyNames": FILE_PATH,
              "additionalProperties": {"type": "string", "maxLength": 64, "pattern": "^[0-9a-f]{64}$"}}}}
PROJECT_FILES = {"type": "object", "properties": {
    "files": {"type": "array", "maxItems": 1_000_000, "items": {
        "type": "object", "required": ["path", "content"], "additionalProperties": False,
        "properties": {"path": FILE_PATH, "content": {"type": "string", "maxLength": 16 * 1024 * 1024}}}},
    "delete": {"type": "array", "maxItems": 1_000_000, "items": FILE_PATH}}}
PROJECT_SEARCH = {"type": "object", "required": ["query"], "properties": {
    "query": {"type": "string", "minLength": 1, "maxLength": 10_000},
    "k": {"type": "integer", "minimum": 1, "maximum": 500},
    "mode": {"type": "string", "enum": ["auto", "bm25", "embed", "hybrid", "tree"]}}}
PROJECT_ID = {"name": "project_id", "in": "path", "required": True,
              "schema": {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}}
ANSWERS = {"200": {"description": "the backend's answer (JSON, or server-sent events when streaming)"},
           "4XX": {"description": "OpenAI-shaped error naming the field and the fix"},
           "503": {"description": "a dependency is down; Retry-After says when to try again"}}


def _post(summary: str, schema: dict[str, Any], parameters: list[dict[str, Any]] | None = None
          ) -> dict[str, Any]:
    return {"post": {"summary": summary, "responses": ANSWERS, "security": [{"key": []}],
                     **({"parameters": parameters} if parameters else {}),
                     "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}}


def _get(summary: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"summary": summary, "responses": ANSWERS, "security": [{"key": []}], "parameters": parameters or []}


PATHS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": _post("chat with a raw model, or verified code with model 'atlas'", CHAT),
    "/v1/completions": _post("text completion with a raw model", COMPLETION),
    "/v1/embeddings": _post("embeddings from llama-server B", EMBEDDING),
    "/v1/solve": _post("a verified solve: candidates judged on the tests", SOLVE),
    "/v1/tasks": {**_post("queue a durable task", TASK),
                  "get": _get("your tasks, newest first", [{"name": "limit", "in": "query", "schema": {
                      "type": "integer", "minimum": 1, "maximum": 100}}])},
    "/v1/tasks/{task_id}": {"get": _get("a task with its attempts", [TASK_ID]),
                            "delete": _get("cancel a task", [TASK_ID])},
    "/v1/tasks/{task_id}/events": {"get": _get("a task's events as server-sent events", [TASK_ID])},
    "/v1/queue/stats": {"get": _get("the queue's numbers and your task quota")},
    "/v1/projects": {**_post("create a project (PageIndex code retrieval)", PROJECT),
                     "get": _get("your projects")},
    "/v1/projects/{project_id}": {"get": _get("a project: its files, lines and languages", [PROJECT_ID]),
                                  "delete": _get("delete a project and its files", [PROJECT_ID])},
    "/v1/projects/{project_id}/diff": _post("which files to upload and delete, from their sha256", PROJECT_DIFF,
                                            [PROJECT_ID]),
    "/v1/projects/{project_id}/files": _post("write and delete files, then reindex what changed", PROJECT_FILES,
                                             [PROJECT_ID]),
    "/v1/projects/{project_id}/search": _post("search a project's code (BM25, embeddings, tree or hybrid)",
                                              PROJECT_SEARCH, [PROJECT_ID]),
    "/v1/models": {"get": _get("the models this key may use")},
    "/v1/models/{model}": {"get": _get("one model", [{"name": "model", "in": "path", "required": True,
                                                      "schema": {"type": "string", "maxLength": 200}}])},
}


def install(app: FastAPI) -> None:
    """``app.openapi()`` returns FastAPI's document of the shared routes plus the proxy's own."""
    generate = app.openapi

    def document() -> dict[str, Any]:
        spec = generate()
        spec["paths"] = {**spec.get("paths", {}), **PATHS}
        spec.setdefault("components", {})["securitySchemes"] = {"key": {"type": "http", "scheme": "bearer"}}
        return spec

    app.openapi = document  # type: ignore[method-assign]
