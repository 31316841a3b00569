"""``sk-llm-`` keys: create (shown once), list, toggle, delete. Owners manage their own; admins all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from atlas_core.deps import RedisDep
from atlas_portal import crud
from atlas_portal.db import ApiKey, User
from atlas_portal.deps import CurrentUser, DbSession, SettingsDep
from atlas_portal.revoke import restored, revoked
from atlas_portal.schemas import KeyCreate, KeyCreated, KeyOut
from atlas_portal.security import display_prefix, hash_key, new_key
from atlas_portal.settings import Settings

router = APIRouter(prefix="/api/keys", tags=["keys"])
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _check_limits(settings: Settings, user: User, body: KeyCreate) -> None:
    """Users may tighten their keys' limits; only an admin may loosen them beyond the defaults (0 = unlimited)."""
    if user.is_admin:
        return
    for field, default in (("rate_limit", settings.key_default_rpm), ("tokens_per_min", settings.key_default_tpm),
                           ("max_concurrent", settings.key_default_concurrency),
                           ("max_streams", settings.key_default_streams)):
        value = getattr(body, field)
        if value is not None and default and (value == 0 or value > default):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"'{field}' may be at most {default} (the default); ask an admin for more")


async def issue_key(session: AsyncSession, settings: Settings, user: User, body: KeyCreate) -> KeyCreated:
    """Create a key for ``user``; the only place a raw key exists is the returned object."""
    _check_limits(settings, user, body)
    if await crud.count_keys(session, user_id=user.id) >= settings.max_keys_per_user:
        raise HTTPException(status.HTTP_409_CONFLICT, f"this user holds {settings.max_keys_per_user} keys, the most "
                            "allowed (ATLAS_MAX_KEYS_PER_USER); delete one first")
    raw = new_key()
    key = await crud.create_key(
        session, user_id=user.id, name=body.name, key_hash=hash_key(raw, settings.key_hash_secret.get_secret_value()),
        prefix=display_prefix(raw),
        rate_limit=settings.key_default_rpm if body.rate_limit is None else body.rate_limit,
        tokens_per_min=settings.key_default_tpm if body.tokens_per_min is None else body.tokens_per_min,
        max_concurrent=settings.key_default_concurrency if body.max_concurrent is None else body.max_concurrent,
        max_streams=settings.key_default_streams if body.max_streams is None else body.max_streams,
        allowed_models=body.allowed_models, expires_days=body.expires_days,
    )
    return KeyCreated.model_validate({**KeyOut.model_validate(key).model_dump(), "key": raw})


async def _owned(session: AsyncSession, user: User, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    # Someone else's key answers exactly like a missing one: ids reveal nothing.
    if key is None or (key.user_id != user.id and not user.is_admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id}")
    return key


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
async def create(body: KeyCreate, user: CurrentUser, session: DbSession, settings: SettingsDep) -> KeyCreated:
    created = await issue_key(session, settings, user, body)
    await session.commit()  # before the key reaches the client, who may use it at once
    return created


@router.get("", response_model=list[KeyOut])
async def list_keys(user: CurrentUser, session: DbSession) -> list[ApiKey]:
    return list(await crud.list_keys(session, user_id=None if user.is_admin else user.id))


@router.patch("/{key_id}/toggle", response_model=KeyOut)
async def toggle(key_id: KeyId, user: CurrentUser, session: DbSession, redis: RedisDep) -> ApiKey:
    key = await _owned(session, user, key_id)
    if not key.is_active and not user.is_admin:
        # Revoking is the owner's call; bringing a revoked key back (maybe revoked by an admin) is not.
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can re-enable a revoked key; create a new one")
    key.is_active = not key.is_active
    await session.commit()
    if key.is_active:
        await restored(redis, user_id=key.user_id, key_id=key.id)
    else:
        await revoked(redis, user_id=key.user_id, key_id=key.id)
    return key


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(key_id: KeyId, user: CurrentUser, session: DbSession, redis: RedisDep) -> Response:
    key = await _owned(session, user, key_id)
    owner = key.user_id
    await session.delete(key)
    await session.commit()
    await revoked(redis, user_id=owner, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
