"""One Redis ACL user per service: only the commands and key patterns that service uses, so a compromised
service (the sandbox above all, next to untrusted code) cannot read or rewrite what belongs to the others.

``atlas up`` writes these rules into the Redis it starts (``acl_lines``); on another Redis, give each service a
user with the same rules (``docs/security.md`` lists them). Commands run inside Lua scripts are checked against
the caller's rules too, so a script's commands are listed with the service that runs it.

    user sandbox reset on #<sha256 of its password> resetkeys ~atlas:sandbox:jti:* resetchannels -@all +ping +set ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

# What every client does on connecting and in its readiness check. (redis-py also sends CLIENT SETINFO, and
# ignores the refusal: Redis 7.0 does not know it, and an ACL rule naming an unknown command fails the whole file.)
_CONNECT = ["ping", "hello", "auth", "info", "select"]
# Lua scripts registered with redis-py: EVALSHA, and SCRIPT LOAD after a Redis restart lost them.
_SCRIPTS = ["eval", "evalsha", "script|load", "script|exists"]
_LIMITER = ["time", "zremrangebyscore", "zrangebyscore", "zrange", "zadd", "zrem", "zscore", "zcard", "get",
            "incrby", "decrby", "pexpire"]
_QUEUE = ["exists", "expire", "hset", "hsetnx", "hget", "hgetall", "hincrby", "hdel", "rpush", "lrange", "del",
          "xadd", "xlen", "xdel", "xack", "xread", "xpending", "xclaim", "xautoclaim", "xreadgroup", "xgroup|create",
          "xinfo|groups", "zadd", "zrem", "zcard", "zrange", "zrangebyscore", "zrevrange", "zremrangebyscore",
          "zscore", "zremrangebyrank", "multi", "exec"]
# The Lens's feedback records (atlas_lens.feedback): written by rag-api and the task-workers where learning is on.
_FEEDBACK = ["lpush", "ltrim", "expire", "sismember", "zadd", "zcard", "zrange", "zrangebyscore", "zrem", "del",
             "multi", "exec"]

# The router's posteriors and the pattern cache (atlas_router): read and written by rag-api and the task-workers.
_ROUTER = ["hgetall", "hget", "hmget", "hset", "hkeys", "hlen", "hdel", "hincrby", "hincrbyfloat", "exists", "expire",
           "del", "zadd", "zcard", "zrange", "zrem", "multi", "exec"]

# rag-api's admission slots, shared by its replicas (atlas_rag.solver.Admission, lua/rag_admission.lua).
_ADMISSION = ["time", "zremrangebyscore", "zcard", "zadd", "zrange", "pexpireat", "zrem"]

# Projects (atlas_pageindex.store): their files, outlines, embeddings and summaries; rag-api alone reads and writes.
_PROJECTS = ["hset", "hget", "hmget", "hgetall", "hkeys", "hdel", "hincrby", "sadd", "srem", "smembers", "scard",
             "spop", "get", "set", "del", "unlink", "incrby", "decrby", "exists", "hexists", "watch", "unwatch",
             "multi", "exec"]

# service -> (key patterns, channels, commands)
RULES: dict[str, tuple[list[str], list[str], list[str]]] = {
    # Single-use capability tokens: SET NX with an expiry, nothing else, on its own keys only.
    "sandbox": (["atlas:sandbox:jti:*"], [], ["set"]),
    "llm-proxy": (
        ["atlas:rl:*", "atlas:usage"],
        ["atlas:keys:events", "atlas:models:events"],
        [*_SCRIPTS, *_LIMITER, "xadd", "subscribe", "unsubscribe", "multi", "exec"],
    ),
    "api-portal": (
        ["atlas:login:*", "atlas:portal:*", "atlas:usage", "atlas:usage:dead", "atlas:revoked"],
        ["atlas:keys:events", "atlas:models:events"],
        [*_SCRIPTS, "incr", "incrby", "decr", "expire", "get", "set", "del", "exists", "ttl", "pttl", "zadd", "zrem",
         "zrange", "zcard", "zremrangebyscore", "zrangebyscore", "xadd", "xack", "xreadgroup", "xgroup|create",
         "publish", "multi", "exec"],
    ),
    "rag-api": (
        ["atlas:tasks:*", "atlas:task:*", "atlas:solves", "atlas:revoked", "atlas:lens:*", "atlas:router:*",
         "atlas:pat:*", "atlas:rag:slots", "atlas:proj:*"],
        ["atlas:keys:events"],
        [*_SCRIPTS, *_QUEUE, *_FEEDBACK, *_ROUTER, *_ADMISSION, *_PROJECTS, "subscribe", "unsubscribe"],
    ),
    "task-worker": (
        ["atlas:tasks:*", "atlas:task:*", "atlas:revoked", "atlas:usage", "atlas:rl:*", "atlas:solves",
         "atlas:lens:*", "atlas:router:*", "atlas:pat:*"],
        [],
        [*_SCRIPTS, *_QUEUE, *_LIMITER, *_FEEDBACK, *_ROUTER],
    ),
    # `atlas lens` (the operator's trainer): reads the feedback records, deletes a user's, sets who learns.
    "lens-trainer": (
        ["atlas:lens:*"],
        [],
        ["lrange", "llen", "del", "zrange", "zrem", "sadd", "srem", "smembers"],
    ),
    # `atlas router` (the operator's commands): posteriors to read or reset, patterns to list, share or forget.
    "router-admin": (
        ["atlas:router:*", "atlas:pat:*"],
        [],
        [*_ROUTER],
    ),
    # KEDA (Kubernetes, components/autoscaling): reads the task streams' pending entries and lag to scale the
    # task-workers; read-only, on the priority streams only.
    "keda": (
        ["%R~atlas:tasks:p0", "%R~atlas:tasks:p1", "%R~atlas:tasks:p2"],
        [],
        ["xpending", "xinfo|groups", "xinfo|stream", "xlen"],
    ),
    # Its history, sessions and collector lease; read-only (``%R~``) the solve log and the task records it lists.
    "dashboard": (
        ["atlas:dash:*", "%R~atlas:solves", "%R~atlas:task:*", "%R~atlas:tasks:owner:*", "%R~atlas:tasks:recent"],
        [],
        [*_SCRIPTS, "get", "mget", "set", "del", "expire", "hgetall", "zadd", "zrange", "zrem", "zremrangebyrank",
         "zrevrange", "xrevrange", "multi", "exec"],
    ),
}


def acl_rule(service: str, password: str) -> str:
    """The ``user`` line of one service (its password as a SHA-256, so the file holds no password)."""
    keys, channels, commands = RULES[service]
    digest = hashlib.sha256(password.encode()).hexdigest()
    # A pattern that starts with "%" carries its own permission ("%R~..." read-only); the others are read-write.
    patterns = [k if k.startswith("%") else f"~{k}" for k in keys]
    parts = ["user", service, "reset", "on", f"#{digest}", "resetkeys", *patterns,
             "resetchannels", *(f"&{c}" for c in channels), "-@all",
             *(f"+{c}" for c in dict.fromkeys([*_CONNECT, *commands]))]
    return " ".join(parts)


def acl_lines(passwords: Mapping[str, str]) -> list[str]:
    """``user`` lines for redis.conf, one per service in ``passwords``."""
    return [acl_rule(service, passwords[service]) for service in RULES if service in passwords]
