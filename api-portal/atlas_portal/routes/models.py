"""Models as users see them; admins rename or hide them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status

from atlas_core.deps import RedisDep
from atlas_core.schemas import MODEL_EVENTS_CHANNEL
from atlas_portal import crud
from atlas_portal.deps import AdminUser, CurrentUser, DbSession
from atlas_portal.registry import CHAT_ROUTES
from atlas_portal.schemas import ModelUpdate

router = APIRouter(tags=["models"])


@router.get("/api/models")
async def list_models(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    entries = await request.app.state.registry.entries(request.app.state.sessions, include_hidden=user.is_admin)
    return [{**entry.model_dump(), "hidden": hidden, "chat": entry.route in CHAT_ROUTES} for entry, hidden in entries]


@router.get("/v1/models")
async def openai_models(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The OpenAI-shaped list (the proxy serves the same list to key holders)."""
    entries = await request.app.state.registry.entries(request.app.state.sessions)
    return {"object": "list", "data": [{"id": e.id, "object": "model", "created": 0, "owned_by": e.owned_by}
                                       for e, _ in entries]}


ModelName = Annotated[str, Path(max_length=200)]


@router.patch("/api/models/{name:path}")
async def update_model(name: ModelName, body: ModelUpdate, request: Request, admin: AdminUser, session: DbSession,
                       redis: RedisDep) -> dict[str, str]:
    known = {e.upstream for e, _ in await request.app.state.registry.entries(request.app.state.sessions,
                                                                             include_hidden=True)}
    if name not in known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model '{name}' (use the name the backend serves)")
    await crud.set_model(session, name=name, display_name=body.display_name, hidden=body.hidden)
    await session.commit()
    await redis.publish(MODEL_EVENTS_CHANNEL, name)
    return {"status": "updated", "model": name}
