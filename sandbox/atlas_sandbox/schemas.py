"""Request and response bodies of /execute and /judge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atlas_sandbox.limits import LimitsRequest

MAX_CODE = 1_000_000
ErrorType = Literal["SyntaxError", "CompileError", "TestFailure", "Timeout", "MemoryLimit", "OutputLimit",
                    "RuntimeError", "SandboxError"]
Verdict = Literal["passed", "SyntaxError", "CompileError", "TestFailure", "Timeout", "MemoryLimit", "OutputLimit",
                  "RuntimeError", "Skipped"]  # a sandbox failure is a 500, never a verdict
# Extra files by relative path (checked by files.check_names): at most 64, each at most MAX_CODE characters.
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _utf8(value)


class ExecuteRequest(Strict):
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


class Candidate(Strict):
    id: str | None = Field(None, max_length=200)
    code: str = Field(max_length=MAX_CODE)


class TestCase(Strict):
    input: str = Field("", max_length=16 * MAX_CODE, description="stdin / functional: the input.")
    output: str = Field("", max_length=16 * MAX_CODE, description="stdin / functional: the expected output.")
    code: str = Field("", max_length=MAX_CODE, description="assert / pytest: the test program.")


class JudgeRequest(Strict):
    language: Language = "python"
    mode: Literal["stdin", "functional", "assert", "pytest"]
    candidates: list[Candidate] = Field(min_length=1, max_length=128)
    tests: list[TestCase] = Field(min_length=1, max_length=10_000)
    setup: str = Field("", max_length=MAX_CODE, description="assert mode: code placed between program and test.")
    func_name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200,
                                  description="functional mode.")
    stop_on_first_failure: bool = True
    stop_on_first_pass: bool = False
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


class JudgeResponse(BaseModel):
    candidates: list[CandidateResult]
    first_passing: int | None
    deadline_hit: bool
    elapsed_ms: float
