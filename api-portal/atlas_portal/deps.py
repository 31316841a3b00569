"""The portal's dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from atlas_core.auth import bearer
from atlas_portal.db import User
from atlas_portal.security import read_token
from atlas_portal.sessions import Sessions
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


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.login_sessions
    return sessions


SessionsDep = Annotated[Sessions, Depends(_sessions)]


async def _login(request: Request, session: DbSession, settings: SettingsDep, sessions: SessionsDep
                 ) -> tuple[User, str]:
    """The logged-in user and their session id: a valid token whose session has not ended, of an active user."""
    token = bearer(request)
    claims = read_token(token, settings.jwt_secret.get_secret_value()) if token else None
    user = await session.get(User, claims[0]) if claims is not None else None
    if user is not None and user.is_active and claims is not None:
        try:
            if await sessions.valid(user.id, claims[1]):
                request.state.session_id = claims[1]
                return user, claims[1]
        except RedisError:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "logins cannot be checked right now (Redis "
                                "is unavailable); retry shortly") from None
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first: send 'Authorization: Bearer <access_token>'",
                        headers={"WWW-Authenticate": "Bearer"})


Login = Annotated[tuple[User, str], Depends(_login)]


async def _current_user(login: Login) -> User:
    return login[0]


CurrentUser = Annotated[User, Depends(_current_user)]


async def _admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can do this")
    return user


AdminUser = Annotated[User, Depends(_admin)]


async def _optional_user(request: Request, session: DbSession, settings: SettingsDep, sessions: SessionsDep
                         ) -> User | None:
    if bearer(request) is None:
        return None
    user, _ = await _login(request, session, settings, sessions)
    return user


MaybeUser = Annotated[User | None, Depends(_optional_user)]
