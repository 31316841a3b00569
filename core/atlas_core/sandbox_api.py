"""The sandbox's wire contract: the bodies of ``POST /execute`` and ``POST /judge``.

The sandbox validates requests and builds responses with these models; its clients (the engine library,
atlas-bench) can type the bodies they send and read with the same ones, so a field renamed on one side is a
type error on the other, not a 400 at run time::

    body = JudgeRequest(mode="stdin", candidates=[ProgramIn(code=src)], tests=[TestCase(input="1\\n")],
                        collect_outputs=True)
    reply = JudgeResponse.model_validate((await http.post(url, json=body.model_dump(exclude_none=True))).json())
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from atlas_core.schemas import Strict

MAX_CODE = 1_000_000
SHOWN_OUTPUT = 300  # characters of a test's output that collect_outputs returns (the digest covers all of it)
ErrorType = Literal["SyntaxError", "CompileError", "TestFailure", "Timeout", "MemoryLimit", "OutputLimit",
                    "RuntimeError", "SandboxError"]
Verdict = Literal["passed", "SyntaxError", "CompileError", "TestFailure", "Timeout", "MemoryLimit", "OutputLimit",
                  "RuntimeError", "Skipped"]  # a sandbox failure is a 500, never a verdict
# What one test gave under collect_outputs: it ran to the end ("ok"), hit a fault, or the deadline cut it.
OutputStatus = Literal["ok", "Timeout", "MemoryLimit", "OutputLimit", "RuntimeError", "Skipped"]
# Extra files by relative path (checked by the sandbox's files.check_names): at most 64, each at most MAX_CODE
# characters.
Files = Annotated[dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=1_000_000)]],
                  Field(max_length=64)]
Language = Annotated[str, Field(max_length=32, description="a language from GET /languages")]


def _utf8(value: Any) -> Any:
    """JSON may carry lone surrogates ("\\ud800") that no file or pipe can hold: refuse them as bad input."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (a lone surrogate such as \\ud800 is not)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _utf8(key)
            _utf8(item)
    return value


class TextModel(Strict):
    """A strict request body whose text fields must be writable to a file: valid Unicode, no lone surrogate."""

    @field_validator("*")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _utf8(value)


class LimitsRequest(Strict):
    """Limits a caller asks for (in a request or a capability token); each can only lower the service's."""

    timeout_s: float | None = Field(None, gt=0, le=600)
    cpu_s: float | None = Field(None, gt=0, le=600)
    memory_mb: int | None = Field(None, ge=16, le=65536)
    processes: int | None = Field(None, ge=1, le=4096)
    file_mb: int | None = Field(None, ge=0, le=4096)
    open_files: int | None = Field(None, ge=16, le=65536)
    output_kb: int | None = Field(None, ge=1, le=65536)


class ExecuteRequest(TextModel):
    code: str = Field(max_length=MAX_CODE)
    language: Language = "python"
    test_code: str | None = Field(None, max_length=MAX_CODE)
    timeout: float | None = Field(None, gt=0, le=600, description="Seconds; lowered to the service's ceiling.")
    stdin: str | None = Field(None, max_length=16 * MAX_CODE)
    files: Files | None = Field(None, description="Extra files for the work directory, by relative path.")
    lint: bool = Field(False, description="Python only: score the code with pylint (0-10) in lint_score.")
    limits: LimitsRequest | None = None


class ExecuteResponse(BaseModel):
    success: bool
    compile_success: bool
    tests_run: int
    tests_passed: int
    lint_score: float | None
    stdout: str
    stderr: str
    error_type: ErrorType | None
    error_message: str | None
    execution_time_ms: float
    output_truncated: bool = False
    peak_memory_kb: int | None = None


class ProgramIn(TextModel):
    """One candidate program of a /judge call."""

    id: str | None = Field(None, max_length=200)
    code: str = Field(max_length=MAX_CODE)


class TestCase(TextModel):
    __test__: ClassVar[bool] = False  # a wire model, not a pytest test class, wherever a test module imports it

    input: str = Field("", max_length=16 * MAX_CODE, description="stdin / functional: the input.")
    output: str = Field("", max_length=16 * MAX_CODE, description="stdin / functional: the expected output "
                        "(ignored, and may be empty, with collect_outputs).")
    code: str = Field("", max_length=MAX_CODE, description="assert / pytest: the test program.")


class JudgeRequest(TextModel):
    language: Language = "python"
    mode: Literal["stdin", "functional", "assert", "pytest"]
    candidates: list[ProgramIn] = Field(min_length=1, max_length=128)
    tests: list[TestCase] = Field(min_length=1, max_length=10_000)
    setup: str = Field("", max_length=MAX_CODE, description="assert mode: code placed between program and test.")
    func_name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200,
                                  description="functional mode.")
    stop_on_first_failure: bool = True
    stop_on_first_pass: bool = False
    collect_outputs: bool = Field(
        False, description="stdin and functional modes: run every test of every candidate (both stop_on_* are "
        "treated as false), ignore the expected outputs, and return each test's output digest in `outputs`, for "
        "clustering candidates by behaviour on inputs without expected outputs.")
    deadline_s: float | None = Field(None, gt=0, le=3600)
    files: Files | None = None
    limits: LimitsRequest | None = None


class Failure(BaseModel):
    test_index: int
    input: str | None = None
    expected: str | None = None
    got: str | None = None
    error: str | None = None
    truncated: bool = False


class TestOutput(BaseModel):
    """What one test printed (stdin mode) or returned (functional mode), under collect_outputs.

    ``digest`` is 24 hex characters of the SHA-256 of the output as the comparison sees it (stdin: lines
    stripped, trailing blank lines ignored, decimal tokens canonical, so "1.0" and "1" agree; functional: the
    returned JSON value, tuples as lists, 1 and 1.0 alike): two equal digests mean the comparison would find
    the outputs equal. It is empty for a fault or a skipped test."""

    __test__: ClassVar[bool] = False  # a wire model, not a pytest test class

    status: OutputStatus
    digest: str
    shown: str = Field(description=f"The first {SHOWN_OUTPUT} characters of the output.")


class CandidateResult(BaseModel):
    index: int
    id: str | None
    verdict: Verdict
    passed: bool
    tests_passed: int
    tests_run: int
    tests_total: int
    first_failure: Failure | None = None
    compile_output: str | None = None
    time_ms: float
    peak_memory_kb: int | None = None
    cached: bool = False
    outputs: list[TestOutput] | None = Field(
        None, description="With collect_outputs: one per test, in the tests' order (empty after a compile "
        "error); None otherwise.")


class JudgeResponse(BaseModel):
    candidates: list[CandidateResult]
    first_passing: int | None
    deadline_hit: bool
    elapsed_ms: float
