"""The wire contracts of a solve and a task, typed once: ``POST /v1/solve``'s request and result, and
``POST /v1/tasks``' request. rag-api serves them, the task-worker runs them, atlas-bench and the CLI send them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atlas_core.schemas import Strict

Language = Literal["python", "javascript", "c", "cpp", "rust", "bash"]
MAX_TEXT = 200_000
MAX_K = 20


class TestIn(Strict):
    """One test a user has. Exactly one shape:

    - ``{"assert": "assert add(2, 3) == 5"}``: a statement run after the code (Python, JavaScript);
    - ``{"input": "1 2\\n", "output": "3\\n"}``: a program fed ``input`` on stdin must print ``output``
      (LiveCodeBench's comparison: line by line after strip, numbers as decimals);
    - ``{"args": [2, 3], "expected": 5}``: the entry point called with ``args`` returns ``expected`` (JSON values;
      tuples compare as lists)."""

    __test__ = False  # not a pytest test class, whatever its name
    assert_: str | None = Field(None, alias="assert", max_length=MAX_TEXT)
    input: str | None = Field(None, max_length=MAX_TEXT)
    output: str | None = Field(None, max_length=MAX_TEXT)
    args: list[Any] | None = Field(None, max_length=100)  # JSON values, bounded by the request's size
    expected: Any = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_shape(self) -> TestIn:
        shapes = [self.assert_ is not None, self.input is not None or self.output is not None, self.args is not None]
        if sum(shapes) != 1:
            raise ValueError("a test is one of {'assert': ...}, {'input': ..., 'output': ...} or "
                             "{'args': [...], 'expected': ...}")
        if shapes[1] and self.output is None:
            raise ValueError("a stdin test needs 'output' (the expected standard output)")
        if self.assert_ is not None and not self.assert_.strip():
            raise ValueError("'assert' must not be empty")
        return self


class Budget(Strict):
    """What one solve may spend; unset fields take the service's defaults (ATLAS_RAG_*)."""

    k: int | None = Field(None, ge=1, le=MAX_K, description="Candidates generated in the first round.")
    max_tokens: int | None = Field(None, ge=16, le=8192, description="Completion tokens per candidate.")
    repair_rounds: int | None = Field(None, ge=0, le=5, description="Repair rounds when nothing passes.")
    deadline_s: float | None = Field(None, gt=0, le=3600, description="Wall-clock limit of the whole solve.")
    self_tests: bool | None = Field(
        None, description="Let the model write checks to rank candidates by: asserts for a Python function, "
        "inputs (and an input generator) for a program that reads stdin; candidates are clustered by their outputs.")
    plans: int | None = Field(
        None, ge=0, le=MAX_K - 1, description="Of the k candidates, how many are written each from a distinct "
        "natural-language plan the model proposes first (PlanSearch); the first candidate is always direct.")
    lens: bool | None = Field(
        None, description="Let the Geometric Lens (a learned verifier, when weights are live) order the candidates "
        "the tests and the checks leave tied; false: selection without it.")
    stop_on_first_pass: bool | None = Field(
        None, description="Only one passing program is needed: the candidates go to the sandbox in the Lens's "
        "order when it is on (else as generated), and the sandbox stops the others once one passes every public "
        "test (no checks or repair follow). No effect without public tests.")
    learn: bool | None = Field(
        None, description="Let this solve's verified outcome teach the router (its posteriors) and, when it passes "
        "its public tests, be kept as a pattern for your later solves (default true; false: nothing is kept).")
    patterns: bool | None = Field(
        None, description="Let your verified patterns help this solve: the most similar as examples in the prompt, "
        "a near-identical one as the answer when it passes the public tests (default true).")


PROJECT_ID = r"^p_[0-9a-f]{24}$"


class ProjectRef(Strict):
    """A project of the caller's (``atlas project sync``) that a solve retrieves from, and whose own pytest files
    may select and repair its candidates."""

    id: str = Field(pattern=PROJECT_ID, max_length=26,
                    description="The project's id, as POST /v1/projects answered it.")
    tests: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=20,
        description="Paths of the project's pytest files that the candidates must pass (Python only; empty: none).")
    file: str | None = Field(
        None, max_length=512, description="The module the answer becomes when the project's tests run (for "
        "example 'pkg/slug.py'): the tests import it by that name. Required with 'tests'.")


class SolveRequest(Strict):
    problem: str = Field(min_length=1, max_length=MAX_TEXT, description="The problem statement (and signature).")
    context: str | None = Field(
        None, max_length=MAX_TEXT, description="Material the generation prompts carry above the problem (model "
        "'atlas' puts the conversation's earlier turns here).")
    project: ProjectRef | None = Field(None, description="Retrieve from this project of yours.")
    language: Language = "python"
    tests: list[TestIn] = Field(default_factory=list, max_length=1000)
    entry_point: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)
    budget: Budget = Field(default_factory=Budget)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Base seed; candidate i uses seed + i.")
    stream: bool = False
    model: str | None = Field(None, max_length=200, description="Ignored: /v1/solve always runs the pipeline.")

    @field_validator("problem")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain the problem's text, not only whitespace")
        return value


class FailureOut(BaseModel):
    test: str
    expected: str | None = None
    got: str | None = None
    error: str | None = None


class CandidateOut(BaseModel):
    index: int
    origin: Literal["sample", "repair", "carried", "pattern"]  # pattern: a verified program the cache answered with
    temperature: float
    seed: int | None
    tokens: int
    duplicate_of: int | None = None
    verdict: str  # the sandbox's verdict on the public tests, "untested" when there were none, "no_code"
    public_passed: int
    public_total: int
    self_agreement: int | None = None  # size of the candidate's output cluster on the self-written checks
    faults: int | None = None  # checks it crashed or timed out on (None: not run on checks)
    plan: int | None = None  # the plan (index into the result's ``plans``) it was written from
    self_passed: int | None = None  # self-tests whose expected value the candidate's output matched
    score: float | None = None  # the pluggable scorer's value (lower is better), when one is installed
    failure: FailureOut | None = None
    code: str | None = None  # the candidate's program: a client can run, compare or keep every candidate


class TestsUsed(BaseModel):
    user: int
    examples: int
    self_written: int  # asserts the model wrote for a function
    generated_inputs: int = 0  # inputs the model wrote (or generated) for a program that reads stdin


class Tokens(BaseModel):
    prompt: int
    completion: int


class Timings(BaseModel):
    total_s: float
    llm_s: float
    sandbox_s: float
    overhead_s: float
    llm_calls: int = 0
    sandbox_calls: int = 0
    sandbox_runs: int = 0  # programs the sandbox ran: c candidates on t tests in one call are c x t runs


class RouteStepOut(BaseModel):
    route: str
    verified: bool  # the solve passed its public tests after this step
    tokens: int
    sandbox_s: float
    complete: bool  # False: the deadline or the token cap stopped it midway


class RouteOut(BaseModel):
    """The router's decision for this solve, the signals behind it and the posterior it sampled."""

    route: str  # the first route: cache, fast, standard, deep; requested when the request named k
    steps: list[RouteStepOut]  # the routes that ran, escalations included, with what each spent
    bin: str | None = None
    difficulty: float | None = None  # the combined difficulty D the bin comes from
    signals: dict[str, float] = Field(default_factory=dict)
    sampled: dict[str, float] = Field(default_factory=dict)  # each route's sampled success probability
    posteriors: dict[str, list[float]] = Field(default_factory=dict)  # [alpha, beta] per route in the bin
    costs: dict[str, float] = Field(default_factory=dict)  # each route's mean measured cost in the bin
    explored: bool = False
    patterns: list[dict[str, Any]] = Field(default_factory=list)  # retrieved verified patterns (id, similarity)
    cache_hit: bool = False  # a cached pattern's program is the answer


class SolveResult(BaseModel):
    id: str
    code: str | None
    language: str
    entry_point: str | None
    verified: bool  # the selected code passed every public test (user tests and the problem's examples)
    status: Literal["passed", "unverified", "failed", "no_code"]
    stopped: Literal["done", "deadline", "budget"]
    summary: str
    winner: int | None
    candidates: list[CandidateOut]
    tests: TestsUsed
    repair_rounds: int
    plans: list[str] = Field(default_factory=list)  # the approaches plan-first candidates were written from
    tokens: Tokens
    usage: dict[str, int]  # OpenAI's shape of ``tokens`` (prompt_tokens, completion_tokens, total_tokens): metering
    timings: Timings
    difficulty: float | None = None  # the Lens's G(x), 0 (easy) to 1 (hard), when its weights estimate it
    lens_changed_pick: bool | None = None  # the Lens's energies changed which candidate was selected
    route: RouteOut | None = None  # the router's decision, when a router is installed
    # The project code the prompts carried: {"path", "start_line", "end_line", "name"} per retrieved piece.
    citations: list[dict[str, Any]] = Field(default_factory=list)


class TaskBudget(Strict):
    """What each attempt of a task may spend; unset fields take the service's defaults (ATLAS_RAG_*). The
    task's wall clock is its ``deadline_s``."""

    k: int | None = Field(None, ge=1, le=MAX_K, description="Candidates of the first attempt (later ones get more).")
    max_tokens: int | None = Field(None, ge=16, le=8192, description="Completion tokens per candidate.")
    repair_rounds: int | None = Field(None, ge=0, le=5, description="Repair rounds within each attempt.")
    self_tests: bool | None = Field(None, description="Let the model write checks to rank candidates by.")
    plans: int | None = Field(None, ge=0, le=MAX_K - 1, description="Candidates written from distinct plans.")


class TaskRequest(Strict):
    """``POST /v1/tasks``: a problem for the durable verify-repair loop."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT, description="The problem statement (and signature).")
    language: Language = "python"
    tests: list[TestIn] = Field(default_factory=list, max_length=1000)
    entry_point: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)
    priority: Literal["p0", "p1", "p2"] = "p1"
    max_attempts: int | None = Field(None, ge=1, le=20, description="Attempts before MAX_ATTEMPTS (default "
                                     "ATLAS_TASK_MAX_ATTEMPTS).")
    deadline_s: float | None = Field(None, gt=0, le=86400, description="Wall-clock limit from submission "
                                     "(default ATLAS_TASK_DEADLINE_S).")
    project_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,200}$", max_length=200,
                                   description="The project the task belongs to (kept with the task).")
    budget: TaskBudget = Field(default_factory=TaskBudget)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Base seed of the first attempt.")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain the problem's text, not only whitespace")
        return value

    def attempt(self, k: int | None, deadline_s: float, seed: int, min_repairs: int = 0) -> SolveRequest:
        """The solve one attempt runs (at least ``min_repairs`` repair rounds, whatever the budget says; k None:
        the router chooses)."""
        b = self.budget
        repairs = None if b.repair_rounds is None else max(min_repairs, b.repair_rounds)
        return SolveRequest(problem=self.prompt, language=self.language, tests=self.tests,
                            entry_point=self.entry_point, seed=seed,
                            budget=Budget(k=k, max_tokens=b.max_tokens, repair_rounds=repairs,
                                          deadline_s=deadline_s, self_tests=b.self_tests, plans=b.plans))
