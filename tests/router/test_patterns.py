"""The pattern cache: patterns belong to their owner (another user's never comes back unless an admin shares it),
scores decay by their kind's half-life and grow with use, promotion and pruning follow PLATFORM.md §5 (an
injected clock), and every tier, user and program has a bound."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from atlas_router import PatternCache, kind_of
from atlas_router.patterns import DAY, MAX_CODE_CHARS
from tests.conftest import RedisServer
from tests.router.helpers import with_redis, words

SUM = "Write a function total(xs) that returns the sum of a list of numbers."
REVERSE = "Write a function backwards(s) that returns the string s reversed."


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def days(self, n: float) -> None:
        self.now += n * DAY


async def write(cache: PatternCache, user: str, problem: str, kind: str = "idiom") -> str:
    pid = await cache.write(user, words(problem), language="python", problem=problem, code="def f(): pass",
                            description="d", kind=kind)  # type: ignore[arg-type]
    assert pid is not None
    return pid


def test_a_users_patterns_are_theirs_unless_an_admin_shares_one(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> None:
        cache = PatternCache(redis)
        pid = await write(cache, "alice", SUM)
        mine = await cache.lookup("alice", words(SUM), "python", 3)
        assert [m.pattern.id for m in mine] == [pid] and mine[0].similarity > 0.99
        assert await cache.lookup("bob", words(SUM), "python", 3) == []
        assert await cache.lookup("alice", words(SUM), "javascript", 3) == []  # another language
        assert await cache.share("alice", pid)
        shared = await cache.lookup("bob", words(SUM), "python", 3)
        assert [(m.pattern.id, m.pattern.shared) for m in shared] == [(pid, True)]
        assert len(await cache.lookup("alice", words(SUM), "python", 3)) == 1  # not twice for its owner
        assert await cache.share("alice", pid, on=False)
        assert await cache.lookup("bob", words(SUM), "python", 3) == []
        assert not await cache.share("bob", pid)  # bob has no such pattern: nothing to share

    with_redis(redis_server, work)


def test_scores_decay_by_half_life_and_grow_with_use(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> None:
        clock = Clock()
        cache = PatternCache(redis, clock=clock)
        await write(cache, "alice", SUM, kind="idiom")  # half-life 90 days
        await write(cache, "alice", REVERSE, kind="api")  # half-life 7 days
        fresh = {m.pattern.kind: m for m in await cache.lookup("alice", words(SUM), "python", 2)}
        assert math.isclose(fresh["idiom"].score, fresh["idiom"].similarity, rel_tol=1e-6)
        clock.days(90)
        aged = {m.pattern.kind: m for m in await cache.lookup("alice", words(SUM), "python", 2)}
        assert math.isclose(aged["idiom"].score, 0.5 * aged["idiom"].similarity, rel_tol=1e-6)
        assert math.isclose(aged["api"].score, 0.5 ** (90 / 7) * aged["api"].similarity, rel_tol=1e-6)
        await cache.touch("alice", [aged["idiom"]] * 3, success=True)  # used three times: ln(4) times the score
        used = (await cache.lookup("alice", words(SUM), "python", 1))[0]
        assert math.isclose(used.score, used.similarity * math.log(4), rel_tol=1e-6)  # and last access is now

    with_redis(redis_server, work)


def test_promotion_needs_uses_success_and_age(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> dict[str, str]:
        clock = Clock()
        cache = PatternCache(redis, clock=clock)
        good, bad = await write(cache, "alice", SUM), await write(cache, "alice", REVERSE)
        clock.days(1)
        by_id = {m.pattern.id: m for m in await cache.lookup("alice", words(SUM + REVERSE), "python", 2)}
        for _ in range(3):
            await cache.touch("alice", [by_id[good]], success=True)
        await cache.touch("alice", [by_id[bad]], success=True)
        await cache.touch("alice", [by_id[bad]] * 2, success=False)  # 1 of 3: below 60 %
        young = {p.id: p.tier for p in await cache.patterns("alice")}
        assert young == {good: "short", bad: "short"}  # three uses, but one day old
        clock.days(3)
        await cache.touch("alice", [by_id[good], by_id[bad]], success=True)
        return {p.id: p.tier for p in await cache.patterns("alice")} | {"good": good, "bad": bad}

    tiers = with_redis(redis_server, work)
    assert tiers[tiers["good"]] == "long" and tiers[tiers["bad"]] == "short"


def test_tiers_users_and_programs_are_bounded(redis_server: RedisServer) -> None:
    async def work(redis: Redis) -> None:
        clock = Clock()
        cache = PatternCache(redis, short_max=3, users=2, clock=clock)
        first = await write(cache, "alice", "alpha one")
        for n, text in enumerate(["beta two", "gamma three", "delta four"]):
            clock.days(1 + n)
            await write(cache, "alice", text)
        kept = {p.id for p in await cache.patterns("alice")}
        assert len(kept) == 3 and first not in kept  # the least recently used went
        assert await redis.hlen("atlas:pat:alice:vec") == 3
        # a long-term api pattern unused for 60 days scores 0.5^(60/7) < 0.01: pruned at the next write
        await redis.hset("atlas:pat:alice:p:" + next(iter(kept)), mapping={"tier": "long", "kind": "api"})
        clock.days(60)
        await write(cache, "alice", "epsilon five")
        assert len(await cache.patterns("alice")) == 3 and next(iter(kept)) not in {p.id for p in
                                                                                    await cache.patterns("alice")}
        assert await cache.write("alice", words("x"), language="python", problem="x",
                                 code="x" * (MAX_CODE_CHARS + 1), description="d", kind="idiom") is None
        await write(cache, "bob", SUM)
        clock.days(1)
        await write(cache, "carol", SUM)  # a third user: alice, the least recently active, is dropped
        assert await cache.patterns("alice") == [] and len(await cache.patterns("carol")) == 1
        assert await cache.forget("bob") == 1 and await cache.patterns("bob") == []

    with_redis(redis_server, work)


def test_kinds() -> None:
    assert kind_of("repair", False, "def f(): pass", "python") == "fix"
    assert kind_of("sample", True, "def f(): pass", "python") == "architecture"
    assert kind_of("sample", False, "import heapq\ndef f(): pass", "python") == "api"
    assert kind_of("sample", False, "def f(): return 1", "python") == "idiom"
    assert kind_of("sample", False, "#include <stdio.h>\nint main(){}", "c") == "api"
