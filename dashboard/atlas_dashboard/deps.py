"""The dashboard's dependencies as ``Annotated`` aliases."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis.exceptions import RedisError

from atlas_core.deps import from_state
from atlas_dashboard.auth import COOKIE, RECHECK_S, DashboardSessions, Portal, PortalError, Viewer
from atlas_dashboard.settings import Settings

UNAVAILABLE = "the dashboard's store (Redis) is unavailable; try again shortly"


SettingsDep = Annotated[Settings, Depends(from_state("settings"))]


SessionsDep = Annotated[DashboardSessions, Depends(from_state("sessions"))]


PortalDep = Annotated[Portal, Depends(from_state("portal"))]


async def _maybe_viewer(request: Request, sessions: SessionsDep, portal: PortalDep) -> Viewer | None:
    """The signed-in viewer, confirmed with the portal at most ``RECHECK_S`` ago; None when signed out (or when
    the portal no longer knows the token: the session ends there)."""
    sid = request.cookies.get(COOKIE)
    try:
        viewer = await sessions.get(sid)
        if viewer is None or sid is None or time.time() - viewer.checked < RECHECK_S:
            return viewer
        try:
            username, is_admin = await portal.me(viewer.token)
        except PortalError as exc:
            if exc.status in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
                await sessions.end(sid, viewer)
                return None
            return viewer  # the portal is down: what it said a minute ago stands until it answers again
        viewer = replace(viewer, username=username, is_admin=is_admin, checked=time.time())
        await sessions.update(sid, viewer)
        return viewer
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None


MaybeViewer = Annotated[Viewer | None, Depends(_maybe_viewer)]


async def _viewer(viewer: MaybeViewer) -> Viewer:
    if viewer is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first: POST /api/login, or open / in a browser")
    return viewer


CurrentViewer = Annotated[Viewer, Depends(_viewer)]
