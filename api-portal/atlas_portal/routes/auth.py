"""Users: register (closed by default), login by username or email, me, and the admin's user management."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import IntegrityError

from atlas_core.deps import RedisDep
from atlas_core.schemas import KEY_EVENTS_CHANNEL
from atlas_portal import crud
from atlas_portal.db import User
from atlas_portal.deps import AdminUser, CurrentUser, DbSession, MaybeUser, SettingsDep
from atlas_portal.schemas import LoginRequest, RegisterRequest, TokenOut, UserOut, UserUpdate
from atlas_portal.security import hash_password, issue_token, verify_password

router = APIRouter(prefix="/api", tags=["auth"])
MAX_FAILED_LOGINS = 10
FAILED_LOGIN_WINDOW_S = 900


@router.post("/auth/register", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def register(body: RegisterRequest, session: DbSession, settings: SettingsDep, caller: MaybeUser) -> User:
    """Open to anyone only with ATLAS_OPEN_REGISTRATION; otherwise the admin creates users here."""
    is_admin_call = caller is not None and caller.is_admin
    if not (settings.open_registration or is_admin_call):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "registration is closed: ask an admin to create your account")
    if body.is_admin and not is_admin_call:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin can create another admin")
    if await crud.user_exists(session, username=body.username, email=body.email):
        raise HTTPException(status.HTTP_409_CONFLICT, "that username or email is already registered")
    try:
        user = await crud.create_user(session, username=body.username, email=body.email,
                                      password_hash=await hash_password(body.password), is_admin=body.is_admin)
        await session.commit()
        return user
    except IntegrityError:  # a concurrent registration won the race
        raise HTTPException(status.HTTP_409_CONFLICT, "that username or email is already registered") from None


@router.post("/auth/login", response_model=TokenOut)
async def login(body: LoginRequest, session: DbSession, settings: SettingsDep, redis: RedisDep) -> TokenOut:
    login_name = (body.username or body.email or "").strip()
    throttle = f"atlas:login:attempts:{login_name.lower()}"
    # Count the attempt before checking the password, so parallel guesses cannot all slip under the limit.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(throttle)
        pipe.expire(throttle, FAILED_LOGIN_WINDOW_S, nx=True)
        attempts, _ = await pipe.execute()
    if int(attempts) > MAX_FAILED_LOGINS:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try again in 15 minutes",
                            headers={"Retry-After": str(FAILED_LOGIN_WINDOW_S)})
    user = await crud.user_by_login(session, login=login_name)
    valid = await verify_password(body.password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username/email or password, or the account is "
                            "deactivated")
    await redis.delete(throttle)
    token = issue_token(user.id, settings.jwt_secret.get_secret_value(), settings.jwt_ttl_s)
    return TokenOut(access_token=token, expires_in=settings.jwt_ttl_s, user=UserOut.model_validate(user))


@router.get("/auth/me", response_model=UserOut)
async def me(user: CurrentUser) -> User:
    return user


@router.get("/users", response_model=list[UserOut])
async def users(admin: AdminUser, session: DbSession) -> list[User]:
    return list(await crud.list_users(session))


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(user_id: int, body: UserUpdate, admin: AdminUser, session: DbSession,
                      redis: RedisDep) -> User:
    """Deactivate (or reactivate) a user, or change their admin flag; deactivation stops their keys at once."""
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}")
    if user.id == admin.id and (body.is_active is False or body.is_admin is False):
        raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot deactivate or demote themself")
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.is_admin is not None:
        user.is_admin = body.is_admin
    await session.commit()
    if body.is_active is False:
        await redis.publish(KEY_EVENTS_CHANNEL, json.dumps({"user_id": user.id}))
    return user
