"""The page, its sign-in, and the JSON it polls. Every ``/api`` route but the sign-in needs a session; every
state-changing one needs the CSRF token (a header a cross-site form cannot send) on top of the SameSite cookie."""

from __future__ import annotations

import contextlib
import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from atlas_core.deps import RedisDep
from atlas_dashboard import collector, views
from atlas_dashboard.auth import COOKIE, PortalError
from atlas_dashboard.deps import UNAVAILABLE, CurrentViewer, MaybeViewer, PortalDep, SessionsDep, SettingsDep
from atlas_dashboard.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
LOGIN_CSRF = "atlas_dashboard_login"
# Everything comes from this origin; no inline script can run, no other site can frame the page.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Window = Literal["15m", "1h", "24h", "7d"]
Step = Literal["1m", "10m", "1h"]


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=320, description="username or email")
    password: str = Field(min_length=1, max_length=1024)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=SECURITY_HEADERS)


def _cookie(response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int) -> None:
    secure = settings.dashboard_cookie_secure or request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")


def _same(presented: str | None, expected: str | None) -> bool:
    return bool(presented and expected) and hmac.compare_digest(str(presented), str(expected))


def _refused(exc: PortalError) -> HTTPException:
    return HTTPException(exc.status, str(exc), headers={"Retry-After": exc.retry_after} if exc.retry_after else None)


pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["dashboard"])


@pages.get("/")
async def index(viewer: MaybeViewer) -> Response:
    return _page("index.html") if viewer is not None else RedirectResponse("/login", status.HTTP_303_SEE_OTHER)


@pages.get("/login")
async def login_page(request: Request, settings: SettingsDep) -> Response:
    # A token for the sign-in form, in a cookie only this origin's requests carry (double submit).
    response = _page("login.html")
    _cookie(response, request, settings, LOGIN_CSRF, secrets.token_urlsafe(24), 3600)
    return response


@api.get("/login/csrf")
async def login_csrf(request: Request) -> dict[str, str]:
    token = request.cookies.get(LOGIN_CSRF)
    if not token:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "open /login first: it sets the sign-in form's cookie")
    return {"csrf": token}


@api.post("/login", status_code=status.HTTP_204_NO_CONTENT)
async def login(body: LoginBody, request: Request, settings: SettingsDep, portal: PortalDep, sessions: SessionsDep,
                x_csrf_token: Annotated[str | None, Header(max_length=100)] = None) -> Response:
    if not _same(x_csrf_token, request.cookies.get(LOGIN_CSRF)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong X-CSRF-Token: reload /login and sign "
                            "in from there")
    address = request.client.host if request.client else "unknown"
    try:
        viewer, expires_in = await portal.login(body.username, body.password, address)
    except PortalError as exc:
        raise _refused(exc) from None
    try:
        sid, ttl = await sessions.create(viewer, expires_in)
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _cookie(response, request, settings, COOKIE, sid, ttl)
    response.delete_cookie(LOGIN_CSRF, path="/")
    return response


@api.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, viewer: CurrentViewer, portal: PortalDep, sessions: SessionsDep,
                 x_csrf_token: Annotated[str | None, Header(max_length=100)] = None) -> Response:
    if not _same(x_csrf_token, viewer.csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong X-CSRF-Token (GET /api/me gives it)")
    try:
        await sessions.end(request.cookies.get(COOKIE, ""), viewer)
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
    with contextlib.suppress(PortalError):  # the portal's token expires on its own; ours is gone either way
        await portal.logout(viewer.token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, path="/")
    return response


@api.get("/me")
async def me(viewer: CurrentViewer, settings: SettingsDep) -> dict[str, Any]:
    return {"user_id": viewer.user_id, "username": viewer.username, "is_admin": viewer.is_admin,
            "csrf": viewer.csrf, "refresh_s": settings.dashboard_scrape_s,
            "panels": [{"id": p.id, "title": p.title, "kind": p.kind, "section": p.section, "unit": p.unit}
                       for p in views.visible(viewer)]}


@api.get("/panels")
async def panels(redis: RedisDep, viewer: CurrentViewer, window: Annotated[Window, Query()] = "1h",
                 step: Annotated[Step | None, Query(description="a finer step than the window's usual one")] = None
                 ) -> dict[str, Any]:
    try:
        data = await views.panels(redis, viewer, window, step=step)
        data["health"] = await collector.health(redis) if viewer.is_admin else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid value for 'step': {exc}") from None
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
    return data


@api.get("/usage")
async def usage(request: Request, viewer: CurrentViewer, portal: PortalDep, sessions: SessionsDep
                ) -> dict[str, Any]:
    try:
        return {"rows": await views.usage(portal, viewer)}
    except PortalError as exc:
        if exc.status == status.HTTP_401_UNAUTHORIZED:  # the portal ended the sign-in: so does the dashboard
            with contextlib.suppress(RedisError):
                await sessions.end(request.cookies.get(COOKIE, ""), viewer)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "your sign-in has ended; sign in again") from None
        raise _refused(exc) from None


@api.get("/recent")
async def recent(redis: RedisDep, viewer: CurrentViewer) -> dict[str, Any]:
    try:
        return {"solves": await views.solves(redis, viewer), "tasks": await views.tasks(redis, viewer)}
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
