"""The dashboard's dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis.exceptions import RedisError

from atlas_dashboard.auth import COOKIE, Portal, Sessions, Viewer

UNAVAILABLE = "the dashboard's store (Redis) is unavailable; try again shortly"


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


async def _maybe_viewer(request: Request, sessions: Annotated[Sessions, Depends(_sessions)]) -> Viewer | None:
    try:
        return await sessions.get(request.cookies.get(COOKIE))
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None


async def _viewer(viewer: Annotated[Viewer | None, Depends(_maybe_viewer)]) -> Viewer:
    if viewer is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first: POST /api/login, or open / in a browser")
    return viewer


SessionsDep = Annotated[Sessions, Depends(_sessions)]
PortalDep = Annotated[Portal, Depends(_portal)]
MaybeViewer = Annotated[Viewer | None, Depends(_maybe_viewer)]
CurrentViewer = Annotated[Viewer, Depends(_viewer)]
