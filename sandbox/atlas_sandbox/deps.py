"""The sandbox's dependencies as ``Annotated`` aliases. They are coroutines, though none awaits anything: FastAPI
runs a plain function dependency on a worker thread, a hop these lookups do not need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from atlas_core.auth import bearer, require_token
from atlas_core.deps import from_state
from atlas_core.errors import ApiError
from atlas_sandbox.executor import Executor
from atlas_sandbox.limits import Limits
from atlas_sandbox.metrics import SandboxMetrics
from atlas_sandbox.outcomes import InvalidRun
from atlas_sandbox.settings import Settings
from atlas_sandbox.tokens import TokenCheckUnavailable, TokenRejected, Verifier

SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
ExecutorDep = Annotated[Executor, Depends(from_state("executor"))]
VerifierDep = Annotated[Verifier, Depends(from_state("verifier"))]
MetricsDep = Annotated[SandboxMetrics, Depends(from_state("sandbox_metrics"))]


async def metrics_credential(request: Request, settings: SettingsDep) -> None:
    """Admits only callers presenting ATLAS_METRICS_TOKEN (operators' endpoints)."""
    require_token(settings.metrics_token, "ATLAS_METRICS_TOKEN")(request)


@dataclass(frozen=True)
class Grant:
    """What the call's capability token allows it: the limits (the service's, lowered by the token's) and the
    language, by its canonical name (a fixed set, fit for a metric label)."""

    limits: Limits
    language: str


@dataclass(frozen=True)
class CapabilityCheck:
    """Checks the request's capability token for a language. Routes call it once FastAPI has validated their
    body, so a malformed request is a 400 that neither uses up its single-use token nor counts as a rejection
    (a dependency that checked the token itself would run before the body's validation)."""

    request: Request
    executor: Executor
    verifier: Verifier
    metrics: SandboxMetrics

    async def __call__(self, language: str) -> Grant:
        try:
            cap = await self.verifier.check(bearer(self.request))
        except TokenRejected as exc:
            self.metrics.rejections.labels(exc.reason).inc()
            raise ApiError(401, str(exc), code="invalid_capability",
                                 headers={"WWW-Authenticate": "Bearer"}) from None
        except TokenCheckUnavailable as exc:
            raise ApiError(503, str(exc), code="dependency_unavailable", headers={"Retry-After": "1"}) \
                from None
        try:
            name = self.executor.toolchain(language).language.name
        except InvalidRun as exc:
            raise ApiError(400, str(exc), code="invalid_language") from None
        if name not in cap.languages:
            self.metrics.rejections.labels("over_limit").inc()
            allowed = ", ".join(sorted(cap.languages)) or "no"
            raise ApiError(403, f"language: this capability token allows {allowed} language(s), not {name}",
                                 code="language_not_allowed")
        return Grant(self.executor.limits.lower(cap.limits), name)


async def _capability_check(request: Request, executor: ExecutorDep, verifier: VerifierDep,
                            metrics: MetricsDep) -> CapabilityCheck:
    return CapabilityCheck(request, executor, verifier, metrics)


Authorise = Annotated[CapabilityCheck, Depends(_capability_check)]
