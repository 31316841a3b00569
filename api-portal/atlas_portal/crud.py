"""Data access: plain functions with keyword-only arguments, one session each, no HTTP in sight."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from atlas_portal.db import ApiKey, ModelSetting, UsageDaily, User, utcnow


async def user_by_login(session: AsyncSession, *, login: str) -> User | None:
    result = await session.execute(select(User).where(or_(User.username == login, User.email == login.lower())))
    return result.scalar_one_or_none()


async def user_exists(session: AsyncSession, *, username: str, email: str) -> bool:
    result = await session.execute(select(User.id).where(or_(User.username == username, User.email == email)))
    return result.first() is not None


async def admin_exists(session: AsyncSession) -> bool:
    return (await session.execute(select(User.id).where(User.is_admin.is_(True)).limit(1))).first() is not None


async def create_user(
    session: AsyncSession, *, username: str, email: str, password_hash: str, is_admin: bool = False
) -> User:
    user = User(username=username, email=email, password_hash=password_hash, is_admin=is_admin, is_active=True)
    session.add(user)
    await session.flush()
    return user


async def count_users(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(User.id)))).scalar_one())


async def count_keys(session: AsyncSession, *, user_id: int) -> int:
    return int((await session.execute(select(func.count(ApiKey.id)).where(ApiKey.user_id == user_id))).scalar_one())


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.execute(select(User).order_by(User.id))).scalars().all()


async def create_key(
    session: AsyncSession, *, user_id: int, name: str, key_hash: str, prefix: str, rate_limit: int,
    tokens_per_min: int, max_concurrent: int, max_streams: int | None, allowed_models: list[str] | None,
    expires_days: int | None,
) -> ApiKey:
    expires = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
    key = ApiKey(user_id=user_id, name=name, key_hash=key_hash, prefix=prefix, rate_limit=rate_limit,
                 tokens_per_min=tokens_per_min, max_concurrent=max_concurrent, max_streams=max_streams,
                 allowed_models=allowed_models, expires_at=expires, is_active=True)
    session.add(key)
    await session.flush()
    return key


async def list_keys(session: AsyncSession, *, user_id: int | None) -> Sequence[ApiKey]:
    """A user's keys, or every key when ``user_id`` is None (admins)."""
    query = select(ApiKey).order_by(ApiKey.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return (await session.execute(query)).scalars().all()


async def key_with_owner(session: AsyncSession, *, key_hash: str) -> tuple[ApiKey, User] | None:
    row = (await session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == key_hash)
    )).first()
    return (row[0], row[1]) if row else None


async def usage(session: AsyncSession, *, user_id: int | None, since: dt.date) -> Sequence[Row[*tuple[Any, ...]]]:
    """Roll-up rows with every ``usage_daily`` column plus ``username`` and ``key_name``. Both are None once the
    user or key is deleted: its usage still counts, and keeps its ids."""
    # The key must also belong to the row's user: a reused key id never lends its name to another user's usage.
    key = and_(ApiKey.id == UsageDaily.key_id, ApiKey.user_id == UsageDaily.user_id)
    query = (select(*UsageDaily.__table__.columns, User.username, ApiKey.name.label("key_name"))
             .select_from(UsageDaily)
             .outerjoin(User, User.id == UsageDaily.user_id)
             .outerjoin(ApiKey, key)
             .where(UsageDaily.day >= since)
             .order_by(UsageDaily.day.desc(), UsageDaily.key_id))
    if user_id is not None:
        query = query.where(UsageDaily.user_id == user_id)
    return (await session.execute(query)).all()


async def add_usage(
    session: AsyncSession, *, day: dt.date, user_id: int, key_id: int, model: str, requests: int, errors: int,
    prompt_tokens: int, completion_tokens: int, latency_ms: int,
) -> None:
    row = await session.get(UsageDaily, (day, user_id, key_id, model))
    if row is None:
        row = UsageDaily(day=day, user_id=user_id, key_id=key_id, model=model, requests=0, errors=0,
                         prompt_tokens=0, completion_tokens=0, latency_ms_total=0)
        session.add(row)
    row.requests += requests
    row.errors += errors
    row.prompt_tokens += prompt_tokens
    row.completion_tokens += completion_tokens
    row.latency_ms_total += latency_ms


async def model_settings(session: AsyncSession) -> dict[str, ModelSetting]:
    return {m.name: m for m in (await session.execute(select(ModelSetting))).scalars()}


async def set_model(session: AsyncSession, *, name: str, display_name: str | None, hidden: bool | None) -> None:
    setting = await session.get(ModelSetting, name) or ModelSetting(name=name, hidden=False)
    if display_name is not None:
        setting.display_name = display_name or None
    if hidden is not None:
        setting.hidden = hidden
    session.add(setting)
