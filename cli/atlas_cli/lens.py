"""``atlas lens``: the Geometric Lens's operator commands (docs/lens.md).

    atlas lens status                      live weights, kept versions, feedback kept
    atlas lens train [--every S] [--force] train on the labelled data and the feedback; publish only if better
    atlas lens bootstrap [--limit N]       label candidates on training problems (atlas-bench), then train
    atlas lens rollback                    make the previous weights live again
    atlas lens learn USER [--off]          keep USER's verified outcomes for training (ATLAS_LENS_LEARN=listed)
    atlas lens forget USER                 delete USER's records
    atlas lens export FILE                 every kept record as JSONL (mode 0600), for offline training

Training runs here, in this process, never in a service; the services pick up published weights by themselves.
It reads the operator's view of the platform (the state directory and atlas.conf) and connects to Redis as
its own ACL user, ``lens-trainer``, allowed only the ``atlas:lens:*`` keys."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_cli.operator import rag_settings_as
from atlas_core.redis import redis_client
from atlas_core.settings import SettingsError
from atlas_lens import BadWeights, EmbeddingClient, NotEnoughData, WeightStore, gather, lens_dir, train_once
from atlas_lens.feedback import forget, records, records_key, set_learning, users
from atlas_rag.settings import Settings as RagSettings


def settings_for(args: argparse.Namespace, state_dir: Path) -> RagSettings:
    """rag-api's settings (the Lens reads what rag-api reads), with the trainer's own Redis user."""
    return rag_settings_as("lens-trainer", args.conf, state_dir)


def run(args: argparse.Namespace, state_dir: Path) -> int:
    if args.lens_command == "bootstrap":
        return bootstrap(args, state_dir)
    settings = settings_for(args, state_dir)
    store = WeightStore(lens_dir(settings.state_dir), keep=settings.lens_keep)
    if args.lens_command == "rollback":
        try:
            print(f"lens: {store.rollback()} is live again")
        except BadWeights as exc:
            raise SettingsError(str(exc)) from None
        return 0
    if args.lens_command == "status":
        return asyncio.run(_status(settings, store))
    return asyncio.run(_redis_command(args, settings))


async def _status(settings: RagSettings, store: WeightStore) -> int:
    live = store.current()
    print(f"live weights: {live or 'none'} (features: {settings.lens_features}; learning: {settings.lens_learn})")
    for name in store.versions():
        try:
            meta = store.meta(name)
        except BadWeights as exc:
            print(f"  {name}: unreadable ({exc})")
            continue
        v = meta.get("validation", {})
        print(f"  {name}{' (live)' if name == live else ''}: {meta.get('features', {}).get('source')} features, "
              f"validation AUC {v.get('auc')} on {v.get('tasks')} task(s), trained on "
              f"{meta.get('train', {}).get('samples')} candidate(s), {time.ctime(meta.get('created', 0))}")
    redis = redis_client(settings)
    try:
        kept = await users(redis)
        total = sum([int(await redis.llen(records_key(u))) for u in kept])
        print(f"feedback: {total} record(s) from {len(kept)} user(s)")
    except RedisError as exc:
        print(f"feedback: Redis unavailable ({type(exc).__name__})")
    finally:
        await redis.aclose()
    return 0


async def _redis_command(args: argparse.Namespace, settings: RagSettings) -> int:
    redis = redis_client(settings, socket_timeout_s=60.0)
    try:
        if args.lens_command == "learn":
            await set_learning(redis, args.user, not args.off)
            print(f"lens: learning {'off' if args.off else 'on'} for {args.user}"
                  + ("" if settings.lens_learn == "listed" else
                     f" (note: ATLAS_LENS_LEARN={settings.lens_learn}, so the list is not what decides)"))
        elif args.lens_command == "forget":
            print(f"lens: deleted {await forget(redis, args.user)} record(s) of {args.user}")
        elif args.lens_command == "export":
            return await _export(redis, Path(args.file))
        elif args.lens_command == "train":
            return await _train(args, settings, redis)
    except RedisError as exc:
        raise SettingsError(f"Redis is unavailable ({type(exc).__name__}): is ATLAS up (`atlas status`)?") from None
    finally:
        await redis.aclose()
    return 0


async def _export(redis: Redis, path: Path) -> int:
    count = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # users' code: readable by the operator only
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        async for user, record in records(redis):
            handle.write(json.dumps({"user": user, **record}) + "\n")
            count += 1
    print(f"lens: exported {count} record(s) to {path}")
    return 0


async def _train(args: argparse.Namespace, settings: RagSettings, redis: Redis | None) -> int:
    while True:
        async with httpx.AsyncClient() as http:
            embedder = EmbeddingClient(http, settings.features_url(), settings.llama_api_key.get_secret_value(),
                                timeout_s=120.0)
            try:
                samples = await gather(settings.state_dir, None if args.no_feedback else redis)
                outcome: dict[str, Any] = await train_once(settings, embedder, samples, force=args.force)
            except NotEnoughData as exc:
                outcome = {"published": None, "why": str(exc)}
        print(json.dumps(outcome, indent=1), flush=True)
        if not args.every:
            return 0 if "train" in outcome else 1  # trained (published or not); 1: too little data to train
        await asyncio.sleep(args.every)


def bootstrap(args: argparse.Namespace, state_dir: Path) -> int:
    if importlib.util.find_spec("atlas_bench") is None:
        print("atlas: error: atlas lens bootstrap needs the atlas-bench package (make install has it)",
              file=sys.stderr)
        return 2
    from atlas_bench.lens import bootstrap_main

    code = bootstrap_main(args, state_dir)
    if code != 0 or not args.train:
        return code
    args.lens_command, args.every, args.force, args.no_feedback = "train", 0, False, True
    return run(args, state_dir)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    lens: argparse.ArgumentParser = sub.add_parser(
        "lens", parents=[common], help="the Geometric Lens: train, bootstrap, status, rollback, learning")
    actions = lens.add_subparsers(dest="lens_command", required=True, metavar="ACTION")
    actions.add_parser("status", help="live weights, kept versions, feedback kept")
    train = actions.add_parser("train", help="train; publish only weights that beat the live ones")
    train.add_argument("--every", type=float, default=0, help="train again every this many seconds (a trainer "
                       "process); 0: once")
    train.add_argument("--force", action="store_true", help="publish even if the live weights do better")
    train.add_argument("--no-feedback", action="store_true", help="train on the labelled files only")
    boot = actions.add_parser("bootstrap", help="label candidates on training problems through the platform, "
                              "check them against the evaluation sets, then train")
    boot.add_argument("--sources", default="mbpp:train,mbpp:validation,mbpp:prompt,livecodebench:2023-09-30",
                      help="comma-separated dataset:split (MBPP) or livecodebench:UNTIL-DATE (release_v1 "
                      "problems up to that date); default: %(default)s")
    boot.add_argument("--limit", type=int, help="at most N problems per source")
    boot.add_argument("--k", type=int, default=5, help="candidates per problem (default 5)")
    boot.add_argument("--max-tokens", type=int, default=256)
    boot.add_argument("--seeds", default="0", help="comma-separated seeds (more candidates per problem)")
    boot.add_argument("--data-path", help="dataset directory (default: ATLAS_DATA_DIR, else ./datasets)")
    boot.add_argument("--no-train", dest="train", action="store_false", help="label only")
    actions.add_parser("rollback", help="make the weights before the live ones live again")
    learn = actions.add_parser("learn", help="keep a user's verified outcomes for training")
    learn.add_argument("user", help="the user's id (as the portal shows it)")
    learn.add_argument("--off", action="store_true", help="stop keeping them (the kept ones stay: see forget)")
    forget_ = actions.add_parser("forget", help="delete a user's kept records and learning flag")
    forget_.add_argument("user")
    export = actions.add_parser("export", help="every kept record as JSONL (mode 0600)")
    export.add_argument("file")
    return lens
