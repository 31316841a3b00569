"""The operators' view of the task queue, behind the metrics credential (Prometheus and the dashboard hold it):
unlike ``/v1/queue/stats``, it names hosts and Redis's settings."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from atlas_core.errors import ApiError
from atlas_rag.deps import TasksDep, require_metrics
from atlas_rag.tasks import UNAVAILABLE

router = APIRouter(prefix="/internal", dependencies=[Depends(require_metrics)])


@router.get("/queue/stats", response_model=None)
async def stats(tasks: TasksDep) -> Response:
    try:
        numbers = await tasks.queue.stats(detail=True)
        numbers["redis"] = await tasks.queue.redis_policy()
    except RedisError:
        raise ApiError(503, UNAVAILABLE) from None
    return JSONResponse(numbers)
