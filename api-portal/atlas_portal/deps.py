"""The portal's dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from atlas_core.auth import bearer
from atlas_portal.db import User
from atlas_portal.security import read_token
from atlas_portal.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed when the handler returns (rolled back if it raises). Handlers
    that announce a change to other services commit first, so nobody reads the old state after the news."""
    async with request.app.state.sessions() as session:
        yield session
        await session.commit()


SettingsDep = Annotated[Settings, Depends(_settings)]
DbSession = Annotated[AsyncSession, Depends(_session)]


async def _current_user(request: Request, session: DbSession, settings: SettingsDep) -> User:
    token = bearer(request)
    user_id = read_token(token, settings.jwt_secret.get_secret_value()) if token else None
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first: send 'Authorization: Bearer <access_token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(_current_user)]


async def _admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can do this")
    return user


AdminUser = Annotated[User, Depends(_admin)]


async def _optional_user(request: Request, session: DbSession, settings: SettingsDep) -> User | None:
    if bearer(request) is None:
        return None
    return await _current_user(request, session, settings)


MaybeUser = Annotated[User | None, Depends(_optional_user)]
