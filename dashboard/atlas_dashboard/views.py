"""What the page shows, computed per request: metric panels from the history, usage from the portal, the latest
solves and tasks from Redis. Every function takes the viewer, and a non-admin gets only what is theirs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from typing import Any

from redis.asyncio import Redis

from atlas_dashboard import store
from atlas_dashboard.auth import Portal, Viewer
from atlas_dashboard.panels import PANELS, Panel, evaluate, index, total
from atlas_dashboard.series import parse_key

SOLVES_STREAM = "atlas:solves"  # rag-api's telemetry: one entry per solve, no prompt text
RECENT_TASKS = "atlas:tasks:recent"  # the queue's index of everyone's newest tasks
RECENT = 50
SOLVES_SCANNED = 2000  # how far back a user's own solves are looked for among everyone's
PROMPT_SHOWN = 120  # characters of a task's prompt its owner sees in the list


def visible(viewer: Viewer) -> list[Panel]:
    return [p for p in PANELS if viewer.is_admin or not p.admin_only]


async def panels(redis: Redis, viewer: Viewer, window: str, now: float | None = None, step: str | None = None
                 ) -> dict[str, Any]:
    """Every metric panel the viewer may see, over ``window`` (one of ``store.WINDOWS``), at the window's usual
    resolution or at ``step`` (a tier that keeps the whole window: 24 h at one minute, for instance)."""
    seconds, tier_name = store.WINDOWS[window]
    tier = store.TIER[step or tier_name]
    if tier.keep_s < seconds:
        raise ValueError(f"the {tier.name} steps are kept {tier.keep_s // 3600} h: pick a shorter window or a "
                         "coarser step")
    if tier.step_s * 2 > seconds:
        raise ValueError(f"a {tier.name} step is too coarse for a {window} window: pick a finer one")
    when = time.time() if now is None else now
    starts = store.steps(tier, seconds, when)
    shown = visible(viewer)
    metric = [p for p in shown if p.query is not None]
    # Only what the viewer may see is read (a user sees no metric panel: nothing is read for them).
    steps = await store.read(redis, tier, starts) if metric else []
    spans = [float(tier.step_s)] * len(starts)
    spans[-1] = max(1.0, when - starts[-1])  # the current step, so far
    # Parsing and evaluating a day of steps takes a few hundred ms of CPU: off the event loop.
    drawn = await asyncio.to_thread(_evaluate, metric, steps, spans) if metric else {}
    panels = [{"id": p.id, "title": p.title, "kind": p.kind, "section": p.section, "unit": p.unit,
               **drawn.get(p.id, {})} for p in shown]
    return {"window": window, "step_s": tier.step_s, "times": starts, "panels": panels}


def _evaluate(panels: list[Panel], steps: list[dict[str, float]], spans: list[float]) -> dict[str, dict[str, Any]]:
    parsed = {key: parse_key(key) for key in {key for step in steps for key in step}}  # each key parsed once
    indexed = [index(step, parsed) for step in steps]
    whole = index(total(steps), parsed)
    return {p.id: evaluate(p, indexed, whole, spans) for p in panels}


async def usage(portal: Portal, viewer: Viewer) -> list[dict[str, Any]]:
    """Requests and tokens per user and key, today and over 7 days (UTC days, from the portal's roll-up; the
    portal answers a non-admin with their own keys only)."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    table: dict[tuple[int, int], dict[str, Any]] = {}
    for row in await portal.usage(viewer.token, days=7):
        key = (_int(row.get("user_id")), _int(row.get("key_id")))
        entry = table.setdefault(key, {
            "user_id": key[0], "key_id": key[1], "user": row.get("username") or f"user {key[0]}",
            "key": row.get("key_name") or f"key {key[1]}",
            **{f"{span}_{n}": 0 for span in ("today", "week") for n in ("requests", "errors", "tokens")}})
        tokens = _int(row.get("prompt_tokens")) + _int(row.get("completion_tokens"))
        spans = ("today", "week") if str(row.get("day")) == today else ("week",)
        for span in spans:
            entry[f"{span}_requests"] += _int(row.get("requests"))
            entry[f"{span}_errors"] += _int(row.get("errors"))
            entry[f"{span}_tokens"] += tokens
    return sorted(table.values(), key=lambda e: (-e["week_tokens"], e["user_id"], e["key_id"]))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _int(value: Any) -> int:
    """A count from another service's record; 0 where it is missing or not a number (never a 500)."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


async def solves(redis: Redis, viewer: Viewer) -> list[dict[str, Any]]:
    entries = await redis.xrevrange(SOLVES_STREAM, count=SOLVES_SCANNED if not viewer.is_admin else RECENT)
    out = []
    for _, raw in entries or []:
        if raw is None:
            continue
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if not viewer.is_admin and fields.get("user_id") != str(viewer.user_id):
            continue
        out.append({"when": _float(fields.get("ts")), "kind": fields.get("source") or "solve",
                    "id": fields.get("task_id") or fields.get("id", ""), "user_id": fields.get("user_id", ""),
                    "status": fields.get("status", ""), "verified": fields.get("verified") == "1",
                    "k": fields.get("k", ""), "tokens": _int(fields.get("prompt_tokens"))
                    + _int(fields.get("completion_tokens")), "seconds": _float(fields.get("total_s"))})
        if len(out) == RECENT:
            break
    return out


async def tasks(redis: Redis, viewer: Viewer) -> list[dict[str, Any]]:
    """The latest tasks of the viewer (an admin: of every user), newest first; a prompt only to its owner."""
    index = RECENT_TASKS if viewer.is_admin else f"atlas:tasks:owner:{viewer.user_id}"
    newest = [_text(task_id) for task_id in await redis.zrevrange(index, 0, RECENT - 1)]  # type: ignore[arg-type]
    async with redis.pipeline(transaction=False) as pipe:
        for task_id in newest:
            pipe.hgetall(f"atlas:task:{task_id}")
        records = await pipe.execute()
    out = []
    for raw in records:
        if not raw:
            continue
        record = {_text(k): _text(v) for k, v in raw.items()}
        mine = record.get("owner") == str(viewer.user_id)
        prompt = ""
        if mine:
            try:
                prompt = str(json.loads(record.get("spec", "{}")).get("prompt", ""))[:PROMPT_SHOWN]
            except (ValueError, AttributeError):
                prompt = ""
        out.append({"id": record.get("id", ""), "user_id": record.get("owner", ""), "status": record.get("status", ""),
                    "priority": record.get("priority", ""), "when": _float(record.get("submitted_at")),
                    "attempts": record.get("deliveries", "0"), "prompt": prompt})
    return out
