"""``POST /execute`` and ``POST /judge`` (a capability token each), and ``GET /languages`` (operators)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends

from atlas_core.errors import ApiError
from atlas_core.sandbox_api import ExecuteRequest, ExecuteResponse, JudgeRequest, JudgeResponse
from atlas_sandbox.deps import Authorise, ExecutorDep, MetricsDep, metrics_credential
from atlas_sandbox.executor import Executor
from atlas_sandbox.files import BadFiles
from atlas_sandbox.metrics import SandboxMetrics
from atlas_sandbox.outcomes import InvalidRun, SandboxBusy
from atlas_sandbox.runner import SandboxFailure

log = logging.getLogger("atlas.sandbox")
router = APIRouter(tags=["sandbox"])


@contextmanager
def _serving(executor: Executor, metrics: SandboxMetrics, endpoint: str, language: str) -> Iterator[None]:
    """Admits the request (503 when the queue is full), times it, and maps what the runs raise to errors."""
    try:
        with executor.admit(), metrics.run_time.labels(endpoint, language).time():
            yield
    except SandboxBusy as exc:
        raise ApiError(503, str(exc), code="sandbox_busy", headers={"Retry-After": "1"}) from None
    except (InvalidRun, BadFiles) as exc:
        raise ApiError(400, str(exc), code="invalid_request") from None
    except SandboxFailure as exc:  # from any run of the request: never reported as the program's verdict
        log.error("sandbox failure: %s", exc)
        raise ApiError(500, f"SandboxError: the sandbox failed, not the program: {exc}",
                             code="sandbox_error") from None


@router.post("/execute", response_model=ExecuteResponse)
async def execute(body: ExecuteRequest, authorise: Authorise, executor: ExecutorDep,
                  metrics: MetricsDep) -> ExecuteResponse:
    grant = await authorise(body.language)
    with _serving(executor, metrics, "execute", grant.language):
        result = await executor.execute(body, grant.limits.lower(body.limits))
    metrics.runs.labels("execute", grant.language, result.error_type or "passed").inc()
    return result


@router.post("/judge", response_model=JudgeResponse)
async def judge(body: JudgeRequest, authorise: Authorise, executor: ExecutorDep, metrics: MetricsDep) -> JudgeResponse:
    grant = await authorise(body.language)
    with _serving(executor, metrics, "judge", grant.language):
        result = await executor.judge(body, grant.limits.lower(body.limits))
    for cand in result.candidates:
        # a run that only collected outputs compared nothing: "collected", not "passed"
        verdict = "collected" if body.collect_outputs and cand.verdict == "passed" else cand.verdict
        metrics.runs.labels("judge", grant.language, verdict).inc()
    return result


# What is installed and which isolation features are on: operators' information, behind the metrics credential.
@router.get("/languages", dependencies=[Depends(metrics_credential)])
async def languages(executor: ExecutorDep) -> dict[str, object]:
    return {"languages": {name: {"version": tc.version, "file": tc.language.source,
                                 "compiled": tc.language.compile is not None}
                          for name, tc in sorted(executor.toolchains.items())},
            "workers": executor.workers, **executor.features}
