"""The dashboard's history in Redis, so it survives a restart and every dashboard replica draws the same.

Layout: one JSON object per time step and tier, ``atlas:dash:{tier}:{step start}``: flattened series key -> what
counters grew by in that step (summed), or a gauge's last value. A JSON string rather than a hash because a
24 h chart reads 144 steps of several hundred fields each: one string a step parses about ten times faster than
a hash's fields. Only the collector holding the lease writes, so its read-modify-write races with nobody.
Three tiers:

| tier | step | kept | drawn for |
|------|------|------|-----------|
| ``1m`` | 60 s | 25 h | 15 min, 1 h (and 24 h at one-minute resolution through the API) |
| ``10m`` | 600 s | 8 days | 24 h |
| ``1h`` | 3600 s | 8 days | 7 days |

Each scrape adds into the current step of every tier, so the last point of a chart moves between minutes. The
bound: at most ``ATLAS_DASHBOARD_MAX_SERIES`` fields a step (the collector's cap, all processes together),
1,500 + 1,152 + 192 steps; and the collector writes nothing while Redis is past its memory alarm."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

PREFIX = "atlas:dash"


@dataclass(frozen=True)
class Tier:
    name: str
    step_s: int
    keep_s: int


TIERS = (Tier("1m", 60, 25 * 3600), Tier("10m", 600, 8 * 86400), Tier("1h", 3600, 8 * 86400))
TIER = {t.name: t for t in TIERS}
# The windows a viewer can pick, each drawn from the finest tier that stays under ~200 points.
WINDOWS = {"15m": (900, "1m"), "1h": (3600, "1m"), "24h": (86400, "10m"), "7d": (7 * 86400, "1h")}


def step_key(tier: Tier, start: int) -> str:
    return f"{PREFIX}:{tier.name}:{start}"


def steps(tier: Tier, window_s: int, now: float) -> list[int]:
    """The start times of the steps that cover the last ``window_s`` seconds, oldest first, the current one last."""
    current = int(now) // tier.step_s * tier.step_s
    count = window_s // tier.step_s
    return [current - (count - 1 - i) * tier.step_s for i in range(count)]


# The steps are written only while the writer still holds the collector's lease (KEYS[1] = ARGV[1]): a collector
# that lost it mid-collection (stalled longer than the lease) cannot overwrite what its successor wrote.
WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i * 2 - 2], 'EX', ARGV[i * 2 - 1]) end
return 1
"""


async def add(redis: Redis, increases: Mapping[str, float], gauges: Mapping[str, float], now: float,
              lease: tuple[str, str]) -> bool:
    """One scrape's increases and gauges into the current step of every tier, if the ``(lease key, holder)``
    still holds; False when it no longer did and nothing was written."""
    if not increases and not gauges:
        return True
    keys = [(tier, step_key(tier, int(now) // tier.step_s * tier.step_s)) for tier in TIERS]
    current = await redis.mget([key for _, key in keys])
    args: list[str | int] = [lease[1]]
    for (tier, _), raw in zip(keys, current, strict=True):
        fields: dict[str, float] = json.loads(raw) if raw else {}
        for field, value in increases.items():
            fields[field] = fields.get(field, 0.0) + value
        fields.update(gauges)
        args += [json.dumps(fields, separators=(",", ":")), tier.keep_s]
    written = await redis.eval(WRITE, len(keys) + 1, lease[0], *(key for _, key in keys), *args)
    return bool(int(written))


async def read(redis: Redis, tier: Tier, starts: list[int]) -> list[dict[str, float]]:
    """Each step's fields, in order (an empty dict where nothing was recorded)."""
    answers = await redis.mget([step_key(tier, start) for start in starts])
    return [_step(raw) for raw in answers]


def _step(raw: bytes | str | None) -> dict[str, float]:
    try:
        fields = json.loads(raw) if raw else {}
    except ValueError:  # never written so by the collector: drawn as a gap rather than failing the page
        return {}
    return {k: v for k, v in fields.items() if isinstance(v, int | float)} if isinstance(fields, dict) else {}
