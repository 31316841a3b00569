"""Dependencies as ``Annotated`` aliases, so routes read ``redis: RedisDep`` like plain typed parameters.

A service's own aliases read what its lifespan put on ``app.state`` through ``from_state``::

    SolverDep = Annotated[Solver, Depends(from_state("solver"))]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis


def from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that returns ``app.state.<name>``. Async, so FastAPI calls it on the event loop rather than
    sending a plain attribute read to its thread pool."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = f"state_{name}"
    return read


RedisDep = Annotated[Redis, Depends(from_state("redis"))]
