"""ATLAS's verified-generation engine as a library: a problem and its public tests in, k candidates generated,
judged in the sandbox, checked against each other, repaired and one selected, within a budget. rag-api serves it,
the task-worker runs it in its repair loop, atlas-bench and the benchmark scripts drive it. The public API is
what this module exports (docs/rag.md, "The engine as a library")."""

from atlas_engine.build import build_engine, engine_config
from atlas_engine.contracts import (
    MAX_K,
    MAX_TEXT,
    Budget,
    CandidateOut,
    Language,
    ProjectRef,
    RouteOut,
    SolveRequest,
    SolveResult,
    TaskBudget,
    TaskRequest,
    TestIn,
)
from atlas_engine.engine import ContextSource, Engine, EngineConfig, Estimator, Router
from atlas_engine.llm import Generation, LLMClient, LLMUnavailable, Message
from atlas_engine.problem import Problem, ProblemError, Workspace, guess_language, is_coding_problem
from atlas_engine.prompts import FENCE_TAG
from atlas_engine.routes import ROUTES, RouteDecision, RouteName, Step, StepRun
from atlas_engine.sandbox import SandboxClient, SandboxRefused, SandboxUnavailable, sandbox_request
from atlas_engine.select import Candidate, Scorer, choose, rank_key
from atlas_engine.settings import EngineSettings
from atlas_engine.solve import CHARS_PER_TOKEN, Retrieved, Solve, SolveBudget, problem_seed
from atlas_engine.telemetry import SOLVES_STREAM, Telemetry
from atlas_engine.timeline import Timeline

__all__ = [
    "CHARS_PER_TOKEN",
    "FENCE_TAG",
    "MAX_K",
    "MAX_TEXT",
    "ROUTES",
    "SOLVES_STREAM",
    "Budget",
    "Candidate",
    "CandidateOut",
    "ContextSource",
    "Engine",
    "EngineConfig",
    "EngineSettings",
    "Estimator",
    "Generation",
    "LLMClient",
    "LLMUnavailable",
    "Language",
    "Message",
    "Problem",
    "ProblemError",
    "ProjectRef",
    "Retrieved",
    "RouteDecision",
    "RouteName",
    "RouteOut",
    "Router",
    "SandboxClient",
    "SandboxRefused",
    "SandboxUnavailable",
    "Scorer",
    "Solve",
    "SolveBudget",
    "SolveRequest",
    "SolveResult",
    "Step",
    "StepRun",
    "TaskBudget",
    "TaskRequest",
    "Telemetry",
    "TestIn",
    "Timeline",
    "Workspace",
    "build_engine",
    "choose",
    "engine_config",
    "guess_language",
    "is_coding_problem",
    "problem_seed",
    "rank_key",
    "sandbox_request",
]
