"""Users: register (closed by default), login by username or email with throttling, logout, password change, me,
and the admin's user management (activation, admin flag, password reset, per-user limits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from atlas_core.deps import RedisDep
from atlas_portal import crud
from atlas_portal.db import User
from atlas_portal.deps import AdminUser, CurrentUser, DbSession, Login, MaybeUser, SessionsDep, SettingsDep
from atlas_portal.revoke import changed, restored, revoked
from atlas_portal.schemas import (
    LoginRequest,
    PasswordChange,
    RegisterRequest,
    TokenOut,
    UserLimits,
    UserOut,
    UserUpdate,
)
from atlas_portal.security import hash_password, issue_token, verify_password
from atlas_portal.settings import Settings
from atlas_portal.throttle import Throttle, address_of

router = APIRouter(prefix="/api", tags=["auth"])
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # the database's integer ids
LIMIT_FIELDS = tuple(UserLimits.model_fields)  # the User columns of the same names
UNAVAILABLE = "logins cannot be handled right now (Redis is unavailable); retry shortly"


def user_limits(user: User, settings: Settings) -> UserLimits:
    """A user's effective limits: their own, else the current defaults."""
    defaults = {"rate_limit": settings.user_default_rpm, "tokens_per_min": settings.user_default_tpm,
                "max_concurrent": settings.user_default_concurrency, "max_streams": settings.user_default_streams,
                "max_queued_tasks": settings.user_default_tasks}
    return UserLimits.model_validate({f: defaults[f] if getattr(user, f) is None else getattr(user, f)
                                      for f in LIMIT_FIELDS})


def user_out(user: User, settings: Settings) -> UserOut:
    return UserOut.model_validate(user).model_copy(update={"limits": user_limits(user, settings)})


@router.post("/auth/register", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def register(body: RegisterRequest, session: DbSession, settings: SettingsDep, caller: MaybeUser) -> UserOut:
    """Open to anyone only with ATLAS_OPEN_REGISTRATION; otherwise the admin creates users here."""
    is_admin_call = caller is not None and caller.is_admin
    if not (settings.open_registration or is_admin_call):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "registration is closed: ask an admin to create your account")
    if body.is_admin and not is_admin_call:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can create another admin")
    if await crud.user_exists(session, username=body.username, email=body.email):
        raise HTTPException(status.HTTP_409_CONFLICT, "that username or email is already registered")
    if await crud.count_users(session) >= settings.max_users:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the portal holds {settings.max_users} accounts, its limit "
                            "(ATLAS_MAX_USERS); remove unused ones or raise the limit")
    try:
        user = await crud.create_user(session, username=body.username, email=body.email,
                                      password_hash=await hash_password(body.password), is_admin=body.is_admin)
        await session.commit()
        return user_out(user, settings)
    except IntegrityError:  # a concurrent registration won the race
        raise HTTPException(status.HTTP_409_CONFLICT, "that username or email is already registered") from None


@router.post("/auth/login", response_model=TokenOut)
async def login(body: LoginRequest, request: Request, session: DbSession, settings: SettingsDep,
                sessions: SessionsDep) -> TokenOut:
    login_name = (body.username or body.email or "").strip()
    throttle: Throttle = request.app.state.throttle
    address = address_of(request.client.host if request.client else None, request.headers.get("x-forwarded-for"),
                          settings.portal_trusted_proxies)
    try:
        wait = await throttle.attempt(login_name, address)
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
    if wait:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"too many failed logins; try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    user = await crud.user_by_login(session, login=login_name)
    valid = await verify_password(body.password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username/email or password, or the account is "
                            "deactivated")
    try:
        await throttle.succeeded(login_name, address)
        sid = await sessions.create(user.id)
    except RedisError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE) from None
    token = issue_token(user.id, sid, settings.jwt_secret.get_secret_value(), settings.jwt_ttl_s)
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_s, user=user_out(user, settings))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(login: Login, sessions: SessionsDep) -> Response:
    """Ends this login at once (its token is refused from now on)."""
    user, sid = login
    await sessions.end(user.id, sid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordChange, user: CurrentUser, session: DbSession,
                          sessions: SessionsDep) -> Response:
    """A new password; every login of the user ends, this one included (log in again with the new one)."""
    if not await verify_password(body.current_password, user.password_hash):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "'current_password' is wrong")
    user.password_hash = await hash_password(body.new_password)
    await session.commit()
    await sessions.end_all(user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser, settings: SettingsDep) -> UserOut:
    return user_out(user, settings)


@router.get("/users", response_model=list[UserOut])
async def users(admin: AdminUser, session: DbSession, settings: SettingsDep) -> list[UserOut]:
    return [user_out(u, settings) for u in await crud.list_users(session)]


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(user_id: UserId, body: UserUpdate, admin: AdminUser, session: DbSession, settings: SettingsDep,
                      redis: RedisDep, sessions: SessionsDep) -> UserOut:
    """Deactivate (or reactivate) a user, change their admin flag, reset their password or set their limits.
    Deactivation and a password reset end every login of the user at once; deactivation also stops their keys
    and cancels their queued tasks. Reactivation does not bring old logins back."""
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}")
    if user.id == admin.id and (body.is_active is False or body.is_admin is False):
        raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot deactivate or demote themself")
    changes = body.model_dump(exclude_unset=True)
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.is_admin is not None:
        user.is_admin = body.is_admin
    if body.password is not None:
        user.password_hash = await hash_password(body.password)
    for field in LIMIT_FIELDS:
        if field in changes:
            setattr(user, field, changes[field])
    await session.commit()
    if body.is_active is False or body.password is not None:
        await sessions.end_all(user.id)
    if body.is_active is False:
        await revoked(redis, user_id=user.id)
    elif body.is_active is True:
        await restored(redis, user_id=user.id)
    if any(field in changes for field in LIMIT_FIELDS):
        await changed(redis, user_id=user.id)
    return user_out(user, settings)
