"""``atlas router``: the confidence router's and the pattern cache's operator commands (docs/rag.md).

    atlas router status [--json]           posteriors per (bin, route): mean, outcomes, mean cost
    atlas router reset                     every posterior back to Beta(1, 1) (after a model change, say)
    atlas router patterns USER [--json]    USER's patterns: kind, tier, uses, successes, score now
    atlas router share USER ID [--off]     offer USER's pattern ID to every user (an admin's choice)
    atlas router forget USER               delete USER's patterns

It connects to Redis as its own ACL user, ``router-admin``, allowed only the ``atlas:router:*`` and
``atlas:pat:*`` keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_cli.operator import rag_settings_as
from atlas_core.redis import redis_client
from atlas_core.settings import SettingsError
from atlas_rag.settings import Settings as RagSettings
from atlas_router import BINS, ROUTES, Posteriors, pattern_cache


def run(args: argparse.Namespace, state_dir: Path) -> int:
    return asyncio.run(_command(args, rag_settings_as("router-admin", args.conf, state_dir)))


async def _command(args: argparse.Namespace, settings: RagSettings) -> int:
    redis = redis_client(settings, socket_timeout_s=30.0)
    try:
        return await COMMANDS[args.router_command](args, settings, redis)
    except RedisError as exc:
        raise SettingsError(f"Redis is unavailable ({type(exc).__name__}): is ATLAS up (`atlas status`)?") from None
    finally:
        await redis.aclose()


async def status(args: argparse.Namespace, settings: RagSettings, redis: Redis) -> int:
    table = await Posteriors(redis).everything()
    rows = {b: {r: {"mean": round(a.mean, 3), "alpha": a.alpha, "beta": a.beta, "outcomes": a.n,
                    "cost": round(a.cost(r), 1)} for r, a in arms.items()} for b, arms in table.items()}
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"router: {'on' if settings.router_enabled else 'off'} (escalation: {settings.router_escalate}, "
          f"exploration {settings.router_explore:g}); pattern cache: {'on' if settings.pattern_cache else 'off'}")
    print(f"{'bin':<8} " + " ".join(f"{r:>24}" for r in ROUTES))
    for b in BINS:
        print(f"{b:<8} " + " ".join(f"{rows[b][r]['mean']:>6.3f} n={rows[b][r]['outcomes']:<5} "
                                    f"cost={rows[b][r]['cost']:>7.0f}" for r in ROUTES))
    return 0


async def reset(args: argparse.Namespace, settings: RagSettings, redis: Redis) -> int:
    removed = await Posteriors(redis).reset()
    print(f"router: {removed} posterior(s) reset to Beta(1, 1)")
    return 0


async def patterns(args: argparse.Namespace, settings: RagSettings, redis: Redis) -> int:
    found = await pattern_cache(redis, settings).patterns(args.user)
    now = time.time()
    rows: list[dict[str, Any]] = [
        {"id": p.id, "kind": p.kind, "tier": p.tier, "language": p.language, "accesses": p.accesses, "uses": p.uses,
         "successes": p.successes, "shared": p.shared, "score": round(p.decay(now), 4),
         "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.created)), "description": p.description}
        for p in sorted(found, key=lambda p: -p.last)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{len(rows)} pattern(s) of {args.user}")
    for r in rows:
        print(f"  {r['id']}  {r['kind']:<12} {r['tier']:<5} used {r['uses']} ({r['successes']} passed), "
              f"{r['accesses']} access(es), score {r['score']}{', shared' if r['shared'] else ''}: "
              f"{r['description'][:80]}")
    return 0


async def share(args: argparse.Namespace, settings: RagSettings, redis: Redis) -> int:
    try:
        found = await pattern_cache(redis, settings).share(args.user, args.id, not args.off)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if not found:
        raise SettingsError(f"{args.user} has no pattern {args.id} (`atlas router patterns {args.user}` lists them)")
    print(f"router: pattern {args.id} of {args.user} is {'no longer ' if args.off else ''}shared with every user")
    return 0


async def forget(args: argparse.Namespace, settings: RagSettings, redis: Redis) -> int:
    print(f"router: deleted {await pattern_cache(redis, settings).forget(args.user)} pattern(s) of {args.user}")
    return 0


COMMANDS = {"status": status, "reset": reset, "patterns": patterns, "share": share, "forget": forget}


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    router: argparse.ArgumentParser = sub.add_parser(
        "router", parents=[common], help="the confidence router and the pattern cache: posteriors, patterns")
    actions = router.add_subparsers(dest="router_command", required=True, metavar="ACTION")
    st = actions.add_parser("status", help="posteriors per difficulty bin and route")
    st.add_argument("--json", action="store_true")
    actions.add_parser("reset", help="every posterior back to Beta(1, 1)")
    pats = actions.add_parser("patterns", help="a user's verified patterns")
    pats.add_argument("user", help="the user's id (as the portal shows it)")
    pats.add_argument("--json", action="store_true")
    sh = actions.add_parser("share", help="offer a user's pattern to every user (its code included)")
    sh.add_argument("user")
    sh.add_argument("id")
    sh.add_argument("--off", action="store_true", help="stop sharing it")
    fg = actions.add_parser("forget", help="delete a user's patterns")
    fg.add_argument("user")
    return router
