"""Checks the capability token of each /execute and /judge call (see atlas_core.capability)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import jwt
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_core.capability import ALGORITHM, MAX_TTL_S, SANDBOX_AUDIENCE, verify_key
from atlas_core.sandbox_api import LimitsRequest

JTI_PREFIX = "atlas:sandbox:jti:"
LEEWAY_S = 5

# Why a request was refused for its capability token: the fixed label set of
# atlas_sandbox_token_rejections_total{reason}.
#   missing     no bearer token (401)
#   invalid     not a valid token for this sandbox: bad signature, audience or claims, a lifetime over MAX_TTL_S,
#               invalid limits or no langs list; the service credential sent instead of a token (401)
#   expired     past its exp (401)
#   reused      its jti was already used: tokens are single-use (401)
#   over_limit  the request asks for more than the token allows: a language outside its langs (403). Limits
#               above the token's are lowered to them, not refused, so they never count here.
RejectionReason = Literal["missing", "invalid", "expired", "reused", "over_limit"]
REJECTION_REASONS: tuple[RejectionReason, ...] = get_args(RejectionReason)


class TokenRejected(Exception):
    """401: the token is missing, invalid, expired, too long-lived or already used (``reason`` says which)."""

    def __init__(self, message: str, reason: RejectionReason) -> None:
        super().__init__(message)
        self.reason: RejectionReason = reason


class TokenCheckUnavailable(Exception):
    """503: the single-use check needs Redis and Redis did not answer."""


@dataclass(frozen=True)
class Capability:
    issuer: str
    task_id: str
    languages: frozenset[str]
    limits: LimitsRequest


class JtiStore(Protocol):
    async def claim(self, jti: str, until: float) -> bool:
        """True the first time ``jti`` is seen before ``until`` (epoch seconds), False after; TokenCheckUnavailable
        when the record cannot say."""


class RedisJtiStore:
    """The single-use record in Redis (SET NX with an expiry), shared by every sandbox replica."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def claim(self, jti: str, until: float) -> bool:
        try:
            return bool(await self.redis.set(JTI_PREFIX + jti, "1", nx=True, exat=int(until)))
        except (RedisError, OSError) as exc:
            raise TokenCheckUnavailable(f"cannot check the token's single use: Redis: {exc}") from None


class MemoryJtiStore:
    """The single-use record of one sandbox process, for a sandbox with no network egress at all (Kubernetes,
    ATLAS_SANDBOX_REPLAY_CACHE=memory). Each replica keeps its own: a token could be replayed on another replica
    within its lifetime (MAX_TTL_S), but only by a caller the network lets reach the sandbox, which is rag-api and
    the task-workers, the services that mint tokens anyway. Bounded: expired entries go once it is full, and past
    ``limit`` live entries new tokens are refused (503) rather than the memory grown."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._until: dict[str, float] = {}

    async def claim(self, jti: str, until: float) -> bool:
        now = time.time()
        if len(self._until) >= self.limit:
            self._until = {k: v for k, v in self._until.items() if v > now}
            if len(self._until) >= self.limit:
                raise TokenCheckUnavailable(f"{self.limit} tokens are live at once; retry shortly")
        if self._until.get(jti, 0.0) > now:
            return False
        self._until[jti] = until
        return True


class Verifier:
    def __init__(self, public_key: str, used: JtiStore) -> None:
        self.key = verify_key(public_key)
        self.used = used

    async def check(self, token: str | None) -> Capability:
        if not token:
            raise TokenRejected("this endpoint needs a capability token: 'Authorization: Bearer <token>' minted "
                                "by rag-api or the task-worker", "missing")
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM], audience=SANDBOX_AUDIENCE,
                                leeway=LEEWAY_S, options={"require": ["exp", "iat", "jti", "aud", "iss"]})
        except jwt.ExpiredSignatureError:
            raise TokenRejected("capability token expired; mint a new one for each call", "expired") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"invalid capability token: {exc}", "invalid") from None
        exp, iat = int(claims["exp"]), int(claims["iat"])
        if exp - iat > MAX_TTL_S or exp > time.time() + MAX_TTL_S + LEEWAY_S:
            raise TokenRejected(f"capability token lives longer than {MAX_TTL_S} s; mint short-lived tokens",
                                "invalid")
        try:
            limits = LimitsRequest.model_validate(claims.get("limits") or {})
        except ValidationError:
            raise TokenRejected("capability token carries invalid limits", "invalid") from None
        langs = claims.get("langs")
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise TokenRejected("capability token has no 'langs' list", "invalid") from None
        if not await self.used.claim(str(claims["jti"]), exp + LEEWAY_S + 1):
            raise TokenRejected("capability token already used; tokens are single-use", "reused")
        return Capability(str(claims["iss"]), str(claims.get("task", "")), frozenset(langs), limits)
