"""Endpoints for other ATLAS processes only: key validation and the model list for llm-proxy (its credential,
ATLAS_PROXY_TOKEN), bootstrap and admin recovery for the host's `atlas` CLI (ATLAS_RECOVERY_TOKEN)."""

from __future__ import annotations

import datetime as dt
import secrets

from fastapi import APIRouter, HTTPException, Request, status

from atlas_core.schemas import KeyInfo, ModelEntry
from atlas_portal import crud
from atlas_portal.deps import DbSession, SessionsDep, SettingsDep
from atlas_portal.revoke import restored
from atlas_portal.routes.auth import user_limits
from atlas_portal.routes.keys import issue_key
from atlas_portal.schemas import BootstrapOut, KeyCreate, RecoverOut, RecoverRequest, ValidateRequest
from atlas_portal.security import KEY_PREFIX, hash_key, hash_password
from atlas_portal.throttle import Throttle

proxy_router = APIRouter(prefix="/internal", tags=["internal"])
host_router = APIRouter(prefix="/internal", tags=["internal"])
BOOTSTRAP_ADMIN = "admin"


@proxy_router.post("/keys/validate", response_model=KeyInfo)
async def validate_key(body: ValidateRequest, session: DbSession, settings: SettingsDep) -> KeyInfo:
    """The key's owner and limits (the user's too), or 401 saying why the key is not usable."""
    found = None
    if body.key.startswith(KEY_PREFIX):
        key_hash = hash_key(body.key, settings.key_hash_secret.get_secret_value())
        found = await crud.key_with_owner(session, key_hash=key_hash)
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")
    key, user = found
    expires = key.expires_at.replace(tzinfo=key.expires_at.tzinfo or dt.UTC) if key.expires_at else None
    if not key.is_active or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this API key has been revoked")
    if expires is not None and expires <= dt.datetime.now(dt.UTC):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this API key has expired")
    limits = user_limits(user, settings)
    streams = settings.key_default_streams if key.max_streams is None else key.max_streams
    return KeyInfo(key_id=key.id, user_id=user.id, username=user.username, name=key.name, is_admin=user.is_admin,
                   rate_limit=key.rate_limit, tokens_per_min=key.tokens_per_min, max_concurrent=key.max_concurrent,
                   max_streams=streams, allowed_models=key.allowed_models,
                   expires_at=expires.timestamp() if expires else None,
                   user_rate_limit=limits.rate_limit, user_tokens_per_min=limits.tokens_per_min,
                   user_max_concurrent=limits.max_concurrent, user_max_streams=limits.max_streams,
                   user_max_queued_tasks=limits.max_queued_tasks)


@proxy_router.get("/models", response_model=list[ModelEntry])
async def models(request: Request) -> list[ModelEntry]:
    return [entry for entry, _ in await request.app.state.registry.entries(request.app.state.sessions)]


@host_router.post("/bootstrap", response_model=BootstrapOut, status_code=status.HTTP_201_CREATED)
async def bootstrap(session: DbSession, settings: SettingsDep) -> BootstrapOut:
    """First start only: create the admin with a generated password and its first key (409 afterwards)."""
    if await crud.admin_exists(session):
        raise HTTPException(status.HTTP_409_CONFLICT, "already bootstrapped: an admin exists")
    password = secrets.token_urlsafe(18)
    admin = await crud.create_user(session, username=BOOTSTRAP_ADMIN, email="admin@atlas.local",
                                   password_hash=await hash_password(password), is_admin=True)
    created = await issue_key(session, settings, admin, KeyCreate(name="first key"))
    await session.commit()
    return BootstrapOut(username=admin.username, password=password, key=created.key)


@host_router.post("/recover", response_model=RecoverOut)
async def recover(body: RecoverRequest, request: Request, session: DbSession, sessions: SessionsDep) -> RecoverOut:
    """The host's way back in (``atlas admin recover``): a new generated password for an account, its throttling
    cleared, its logins ended, and the account active again. Only the state directory's credential opens it."""
    user = await crud.user_by_login(session, login=body.username)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account '{body.username[:64]}'")
    password = secrets.token_urlsafe(18)
    user.password_hash = await hash_password(password)
    user.is_active = True
    await session.commit()
    throttle: Throttle = request.app.state.throttle
    await throttle.clear(user.username)
    await throttle.clear(user.email)
    await sessions.end_all(user.id)
    await restored(request.app.state.redis, user_id=user.id)
    return RecoverOut(username=user.username, password=password)
