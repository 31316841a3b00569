"""The key-management web UI: one server-rendered page, a little JS, the JSON API behind it."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from atlas_portal.deps import SettingsDep

HERE = Path(__file__).resolve().parent.parent
STATIC = HERE / "static"
# Everything comes from this origin; no inline script can run, no other site can frame the page.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def ui_router() -> APIRouter:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui")

    @router.get("/ui", response_class=HTMLResponse)
    async def index(request: Request, settings: SettingsDep) -> HTMLResponse:
        response = templates.TemplateResponse(request, "index.html", {"api_url": settings.public_api_url})
        response.headers.update(SECURITY_HEADERS)
        return response

    return router
