"""``POST /v1/solve``: a problem and its tests in, the verified program out (JSON, or SSE progress then the
result). Reached through llm-proxy, which authenticates users and sends the service credential."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from atlas_core.errors import ApiError
from atlas_engine import ProblemError, Solve, SolveRequest, SolveResult, Workspace
from atlas_rag.deps import CallerId, SolverDep, TokenCap, require_proxy
from atlas_rag.projects import prepare
from atlas_rag.solver import Solver, SolverBusy
from atlas_rag.streaming import respond, sse

router = APIRouter(dependencies=[Depends(require_proxy)])
# The slots are in Redis (solver.Admission): without it no replica can tell how many solves run, so none starts
# one (admitting blind would let every replica overload llama-server at once).
ADMISSION_UNAVAILABLE = "solves cannot be admitted: their shared slots (Redis) are unavailable; retry shortly"


async def admit(solver: Solver, request: SolveRequest, prefix: str = "", cap: int | None = None,
                workspace: Workspace | None = None) -> Solve:
    """The solve, admitted and parsed, or the 400 (naming the field, under ``prefix``) or 503 that refuses it
    before any work."""
    try:
        return await solver.start(request, cap, workspace)
    except ProblemError as exc:
        raise ApiError(400, str(exc), param=prefix + exc.field) from None
    except SolverBusy:
        raise ApiError(503, "too many solves are running; retry shortly", headers={"Retry-After": "5"}) from None
    except RedisError:
        raise ApiError(503, ADMISSION_UNAVAILABLE) from None


@router.post("/v1/solve", response_model=None)
async def solve(body: SolveRequest, request: Request, solver: SolverDep, cap: TokenCap, user: CallerId) -> Response:
    # A named project must be the caller's (404 before any work); its own tests come with it when asked for.
    workspace = await prepare(request.app.state.pages, body.project, user)
    state = await admit(solver, body, cap=cap, workspace=workspace)

    def frame(item: dict[str, Any] | SolveResult) -> list[bytes]:
        if isinstance(item, SolveResult):
            return [sse({"type": "result", "result": item.model_dump(), "usage": item.usage}), sse(b"[DONE]")]
        return [sse({"type": "progress", **item})]

    return await respond(request, solver, state, stream=body.stream, user=user, frame=frame,
                         body=lambda result: result.model_dump())
