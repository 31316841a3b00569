"""Usage per user (admins: everyone), from the daily roll-up; never a global figure shown as a user's."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query

from atlas_portal import crud
from atlas_portal.deps import CurrentUser, DbSession
from atlas_portal.schemas import UsageOut, UsageRow

router = APIRouter(prefix="/api", tags=["usage"])


@router.get("/usage", response_model=UsageOut)
async def usage(user: CurrentUser, session: DbSession, days: int = Query(30, ge=1, le=366),
                user_id: int | None = Query(None, ge=1, le=2**31 - 1, description="admins: one user's usage")
                ) -> UsageOut:
    scope = user_id if user.is_admin else user.id
    since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    rows = [UsageRow.model_validate(r) for r in await crud.usage(session, user_id=scope, since=since)]
    return UsageOut(rows=rows, requests=sum(r.requests for r in rows),
                    prompt_tokens=sum(r.prompt_tokens for r in rows),
                    completion_tokens=sum(r.completion_tokens for r in rows))
