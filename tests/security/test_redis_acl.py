"""Each service's Redis user (``atlas_core.redis_acl``) against a real Redis started with the rules atlas up writes:
everything the service really does works, and what belongs to the others is refused (NOPERM)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from atlas_cli.plan import redis_binary
from atlas_core.capability import mint, public_key_text, signing_key
from atlas_core.health import redis_check
from atlas_core.queue import PRIORITIES, TaskQueue
from atlas_core.ratelimit import Limiter, Owner
from atlas_core.redis_acl import RULES, acl_lines
from atlas_core.schemas import KEY_EVENTS_CHANNEL, KeyInfo
from atlas_portal.revoke import changed, restored, revoked
from atlas_portal.rollup import GROUP as ROLLUP_GROUP
from atlas_portal.sessions import Sessions
from atlas_portal.throttle import Throttle
from atlas_proxy.metering import Meter, Settlement
from atlas_rag.revocations import cancel_revoked
from atlas_rag.solver import SLOTS_KEY, Admission
from atlas_sandbox.tokens import RedisJtiStore, Verifier
from tests.conftest import free_port

PASSWORDS = {name: secrets.token_urlsafe(24) for name in RULES}
ADMIN = secrets.token_urlsafe(24)
INFO = KeyInfo(key_id=3, user_id=9, username="u", name="k", rate_limit=10, tokens_per_min=10_000, max_concurrent=2,
               max_streams=2, user_rate_limit=20, user_tokens_per_min=20_000, user_max_concurrent=4,
               user_max_streams=4)


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("acl-redis")
    port = free_port()
    conf = directory / "redis.conf"
    conf.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f'requirepass "{ADMIN}"', f'dir "{directory}"',
                               "save \"\"", "appendonly no", "maxmemory 64mb", "maxmemory-policy noeviction",
                               *acl_lines(PASSWORDS)]) + "\n")
    proc = subprocess.Popen([redis_binary(), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port, password=ADMIN) as client:
                client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def as_service(port: int, service: str, work: Callable[[Redis], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = Redis(port=port, username=service, password=PASSWORDS[service])
        try:
            assert await redis_check(client)() is None  # the readiness check (PING and INFO) works for every one
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def refused(call: Awaitable[Any]) -> None:
    with pytest.raises(NoPermissionError):
        await call


def test_the_sandbox_can_only_record_its_single_use_tokens(acl_redis: int) -> None:
    secret = "s" * 40

    async def work(r: Redis) -> None:
        token = mint(signing_key(secret), issuer="t", task_id="t", languages=["python"])
        await Verifier(public_key_text(secret), RedisJtiStore(r)).check(token)
        await refused(r.get("atlas:task:anything"))
        await refused(r.set("atlas:rl:{u1}:req", "1"))
        await refused(r.xadd("atlas:usage", {"x": "1"}))
        await refused(r.keys("*"))
        await refused(r.config_get("requirepass"))

    as_service(acl_redis, "sandbox", work)


def test_the_proxy_limits_meters_and_listens_but_reads_no_task_or_login(acl_redis: int) -> None:
    async def work(r: Redis) -> None:
        limiter = Limiter(r, 60)
        decision = await limiter.admit(Owner.of(INFO), "req-1", 100)
        assert decision.admitted
        from prometheus_client import CollectorRegistry

        meter = Meter(r, limiter, 10, CollectorRegistry())
        await meter.settle(Settlement(INFO, "m", "req-1", 100, 200, 5, 7, time.time()))
        assert meter.dropped._value.get() == 0 and not meter._waiting  # written, not buffered
        assert await limiter.open_stream(INFO, "s1") == 0
        await limiter.refresh_stream(INFO, "s1")
        await limiter.close_stream(INFO, "s1")
        async with r.pubsub() as pubsub:
            await pubsub.subscribe(KEY_EVENTS_CHANNEL)
        await refused(r.hgetall("atlas:task:x"))
        await refused(r.xrange("atlas:tasks:p0"))
        await refused(r.get("atlas:portal:session:x"))
        await refused(r.publish(KEY_EVENTS_CHANNEL, "{}"))  # only the portal announces revocations

    as_service(acl_redis, "llm-proxy", work)


def test_the_portal_throttles_keeps_sessions_rolls_up_and_revokes(acl_redis: int) -> None:
    async def work(r: Redis) -> None:
        throttle = Throttle(r)
        assert await throttle.attempt("admin", "10.0.0.1") == 0
        await throttle.succeeded("admin", "10.0.0.1")
        await throttle.clear("admin")
        sessions = Sessions(r, 60, 2)
        sid = await sessions.create(9)
        assert await sessions.valid(9, sid)
        await sessions.end(9, sid)
        await sessions.create(9)
        await sessions.end_all(9)
        await revoked(r, user_id=9, key_id=3)
        await restored(r, user_id=9, key_id=3)
        await changed(r, user_id=9)
        await r.xgroup_create("atlas:usage", ROLLUP_GROUP, id="0", mkstream=True)
        await r.xreadgroup(ROLLUP_GROUP, "c", {"atlas:usage": ">"}, count=10)
        await refused(r.get("atlas:rl:{u9}:toksum"))
        await refused(r.hgetall("atlas:task:x"))
        await refused(r.xadd("atlas:tasks:p0", {"id": "x"}))

    as_service(acl_redis, "api-portal", work)


def test_rag_api_queues_follows_and_cancels_but_cannot_meter_or_limit(acl_redis: int) -> None:
    async def work(r: Redis) -> None:
        queue = TaskQueue(r)
        task_id = await queue.submit({"prompt": "x"}, owner="9", priority="p1", deadline_s=60, max_attempts=1,
                                     key_id="3", quota=5)
        assert (await queue.record(task_id) or {})["status"] == "queued"
        assert await queue.records(await queue.owned("9", 10))
        await queue.events(task_id, "0", block_ms=10)
        await queue.stats(detail=True)
        assert await queue.redis_policy() == {"maxmemory_policy": "noeviction", "appendonly": "no"}
        assert await cancel_revoked(queue, {"user_id": 9, "key_id": 3, "revoked": True}) == 1
        await r.xadd("atlas:solves", {"id": "s"})
        admission = Admission(r, 1)  # the slots its replicas share: taken, counted, given back
        assert await admission.take("s1", 60) and not await admission.take("s2", 60)
        assert await admission.running() == 1
        await admission.give("s1")
        assert await admission.running() == 0
        async with r.pubsub() as pubsub:
            await pubsub.subscribe(KEY_EVENTS_CHANNEL)
        await refused(r.xadd("atlas:usage", {"x": "1"}))
        await refused(r.get("atlas:rl:{u9}:toksum"))
        await refused(r.get("atlas:portal:session:x"))
        await refused(r.config_get("maxmemory-policy"))

    as_service(acl_redis, "rag-api", work)


def test_the_worker_runs_tasks_meters_attempts_and_charges_tokens(acl_redis: int) -> None:
    async def submit() -> str:
        client = Redis(port=acl_redis, username="rag-api", password=PASSWORDS["rag-api"])
        try:
            return await TaskQueue(client).submit({"prompt": "x"}, owner="9", priority="p0", deadline_s=60,
                                                  max_attempts=1, key_id="3")
        finally:
            await client.aclose()

    task_id = asyncio.run(submit())

    async def work(r: Redis) -> None:
        queue = TaskQueue(r)
        await queue.ensure_groups()
        await queue.promote()
        delivery = next(d for d in await queue.read("w1", 10, 10) if d.task_id == task_id)
        assert (await queue.begin(delivery, "w1")).state == "run"
        assert await queue.heartbeat(delivery, "w1") == (True, "")
        await queue.add_attempt(task_id, {"kind": "attempt", "n": 1}, {"key_id": "3", "prompt_tokens": 5,
                                                                       "completion_tokens": 6, "requests": 0})
        limiter = Limiter(r, 60)
        owner = Owner(user_id="9", key_id="3", user_tpm=20_000, key_tpm=10_000)
        assert (await limiter.admit(owner, "attempt-1", 500, mode="tokens")).admitted
        await limiter.settle(owner, "attempt-1", 500, 11)
        await queue.reclaim("w1", 60_000, 1)
        await queue.announce("w1", {"running": 1})
        assert await queue.finish(delivery, "succeeded", {"stop_reason": "SUCCESS"}, {}, {"succeeded": 1}, owner="9")
        await queue.retire("w1")
        await refused(r.get("atlas:portal:session:x"))
        await refused(r.incr("atlas:login:ip:10.0.0.1"))
        await refused(r.publish(KEY_EVENTS_CHANNEL, "{}"))
        await refused(r.zadd(SLOTS_KEY, {"forged": 1.0}))  # rag-api's admission slots are rag-api's alone

    as_service(acl_redis, "task-worker", work)
    with redis.Redis(port=acl_redis, password=ADMIN) as admin:
        metered = [json.loads(json.dumps({k.decode(): v.decode() for k, v in fields.items()}))
                   for _, fields in admin.xrange("atlas:usage")]
        assert {"key_id": "3", "prompt_tokens": "5", "completion_tokens": "6", "requests": "0"} in metered
        assert all(admin.xlen(f"atlas:tasks:{p}") == 0 for p in PRIORITIES)


def test_the_dashboard_writes_only_its_own_keys_and_reads_solves_and_tasks(acl_redis: int) -> None:
    with redis.Redis(port=acl_redis, password=ADMIN) as admin:
        admin.xadd("atlas:solves", {"id": "s1"})
        admin.hset("atlas:task:t1", mapping={"id": "t1", "owner": "1"})
        admin.zadd("atlas:tasks:owner:1", {"t1": 1.0})

    async def work(r: Redis) -> None:
        await r.set("atlas:dash:1m:60", '{"x": 1.5}', ex=60)
        assert await r.mget(["atlas:dash:1m:60"]) == [b'{"x": 1.5}']
        await r.set("atlas:dash:leader", "me", px=1000)
        assert (await r.xrevrange("atlas:solves", count=1) or [])[0][1] == {b"id": b"s1"}
        assert (await r.hgetall("atlas:task:t1"))[b"owner"] == b"1"
        assert await r.zrevrange("atlas:tasks:owner:1", 0, 5) == [b"t1"]
        await refused(r.hset("atlas:task:t1", "status", "succeeded"))  # read-only
        await refused(r.xadd("atlas:solves", {"id": "forged"}))
        await refused(r.get("atlas:anything"))
        await refused(r.xrange("atlas:usage"))

    as_service(acl_redis, "dashboard", work)


def test_the_lens_trainer_reads_and_forgets_feedback_and_sets_who_learns_but_nothing_else(acl_redis: int) -> None:
    with redis.Redis(port=acl_redis, password=ADMIN) as admin:
        admin.lpush("atlas:lens:fb:x", json.dumps({"problem": "p", "candidates": []}))
        admin.zadd("atlas:lens:fb:users", {"x": time.time()})

    async def work(r: Redis) -> None:
        from atlas_lens.feedback import forget, records, set_learning, users  # imports torch: only here

        assert await r.lrange("atlas:lens:fb:x", 0, -1) == [b'{"problem": "p", "candidates": []}']
        assert await users(r) == ["x"]
        assert [user async for user, _ in records(r)] == ["x"]  # atlas lens export / train
        await set_learning(r, "x", True)
        assert await r.smembers("atlas:lens:learn") == {b"x"}
        assert await forget(r, "x") == 1
        assert await r.smembers("atlas:lens:learn") == set() and await users(r) == []
        await refused(r.set("atlas:lens:fb:x", "forged"))  # its own keys, but not a command it has
        await refused(r.lrange("atlas:tasks:x", 0, -1))  # commands it has, but not its keys
        await refused(r.delete("atlas:tasks:x"))
        await refused(r.zrange("atlas:tasks:recent", 0, -1))
        await refused(r.delete("atlas:portal:session:x"))
        await refused(r.keys("*"))

    as_service(acl_redis, "lens-trainer", work)


def test_every_service_has_rules_and_no_rule_grants_everything(tmp_path: Path) -> None:
    assert set(RULES) == {"sandbox", "llm-proxy", "api-portal", "rag-api", "task-worker", "lens-trainer",
                          "router-admin", "dashboard", "keda"}
    for line in acl_lines(PASSWORDS):
        assert "~*" not in line.split() and "+@all" not in line and "allkeys" not in line
        assert PASSWORDS[line.split()[1]] not in line  # only the password's hash is written


@pytest.mark.parametrize("service", ["rag-api", "task-worker"])
def test_the_router_runs_its_whole_cycle_as_each_service(acl_redis: int, service: str) -> None:
    """Posteriors read and updated, a pattern written (with its bounds), looked up and used: every command the
    router and the cache send, under the service's own rules."""
    import numpy as np

    from atlas_router import PatternCache, Posteriors

    async def work(r: Redis) -> None:
        posteriors, cache = Posteriors(r), PatternCache(r, short_max=1, users=1)
        await posteriors.update("LOW", "fast", True, 100.0)
        assert (await posteriors.read("LOW"))["fast"].n >= 1
        vector = np.ones(8, dtype=np.float32)
        for problem in ("p1", "p2"):  # the second write evicts the first (short_max=1)
            assert await cache.write(service, vector, language="python", problem=problem, code="x = 1",
                                     description="d", kind="idiom")
        found = await cache.lookup(service, vector, "python", 2)
        await cache.touch(service, found, success=True)
        assert len(found) == 1 and len(await cache.patterns(service)) == 1
        await refused(r.get("atlas:portal:session:x"))

    as_service(acl_redis, service, work)


def test_the_router_admin_reads_resets_shares_and_forgets_but_nothing_else(acl_redis: int) -> None:
    import numpy as np

    from atlas_router import PatternCache, Posteriors

    async def work(r: Redis) -> None:
        posteriors, cache = Posteriors(r), PatternCache(r)
        await posteriors.update("HIGH", "deep", False, 10.0)
        assert (await posteriors.everything())["HIGH"]["deep"].n == 1
        pid = await cache.write("ann", np.ones(8, dtype=np.float32), language="python", problem="p", code="x = 1",
                                description="d", kind="idiom")
        assert pid and await cache.share("ann", pid) and [p.shared for p in await cache.patterns("ann")] == [True]
        assert await cache.forget("ann") == 1 and await posteriors.reset() >= 1
        await refused(r.lrange("atlas:tasks:x", 0, -1))
        await refused(r.get("atlas:lens:learn"))
        await refused(r.keys("*"))

    as_service(acl_redis, "router-admin", work)


def test_keda_reads_the_task_streams_backlog_and_nothing_else(acl_redis: int) -> None:
    """KEDA's redis-streams scaler (Kubernetes): the pending entries and the lag of the priority streams' group, as
    its own read-only user; it can neither write, consume nor read a task."""
    with redis.Redis(port=acl_redis, password=ADMIN) as admin:
        admin.delete("atlas:tasks:p1")
        admin.xgroup_create("atlas:tasks:p1", "task-workers", id="0", mkstream=True)
        for n in range(3):
            admin.xadd("atlas:tasks:p1", {"task": f"t{n}"})
        admin.xreadgroup("task-workers", "w1", {"atlas:tasks:p1": ">"}, count=1)

    async def work(r: Redis) -> None:
        pending = await r.xpending("atlas:tasks:p1", "task-workers")
        assert pending["pending"] == 1
        groups = await r.xinfo_groups("atlas:tasks:p1")
        assert groups[0]["lag"] == 2  # what waits undelivered: KEDA's lagCount
        assert await r.xlen("atlas:tasks:p1") == 3
        await refused(r.xadd("atlas:tasks:p1", {"task": "x"}))
        await refused(r.xreadgroup("task-workers", "keda", {"atlas:tasks:p1": ">"}))
        await refused(r.hgetall("atlas:task:t0"))
        await refused(r.keys("*"))

    as_service(acl_redis, "keda", work)
