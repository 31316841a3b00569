"""The engine over the model server and the sandbox, built from settings, as rag-api and the task-workers run it."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from atlas_engine.engine import Engine, EngineConfig, Estimator, Router
from atlas_engine.llm import LLMClient
from atlas_engine.sandbox import SandboxClient
from atlas_engine.select import Scorer
from atlas_engine.settings import EngineSettings
from atlas_engine.upstreams import UpstreamConfig, Upstreams


def engine_config(settings: EngineSettings) -> EngineConfig:
    return EngineConfig(k=settings.rag_k, max_tokens=settings.rag_max_tokens,
                        repair_rounds=settings.rag_repair_rounds, deadline_s=settings.rag_deadline_s,
                        self_tests=settings.rag_self_tests, plans=settings.rag_plans,
                        prompt_style=settings.rag_prompt_style, lens=settings.rag_lens, deep_k=settings.rag_deep_k,
                        deep_plans=settings.rag_deep_plans, deep_repairs=settings.rag_deep_repairs)


def build_engine(http: httpx.AsyncClient, settings: EngineSettings, issuer: str, scorer: Scorer | None = None,
                 estimator: Estimator | None = None, router: Router | None = None,
                 registry: CollectorRegistry | None = None) -> Engine:
    """The engine over the model server and the sandbox, as rag-api and the task-workers both run it
    (``issuer`` names the caller in the sandbox's capability tokens), with the Lens and the router where they
    are built; the replicas of llama-server A are counted in ``registry`` when given."""
    api_key = settings.llama_api_key.get_secret_value()
    upstreams = Upstreams(http, settings.llama_url, api_key, upstream_config(settings), registry=registry)
    llm = LLMClient(http, settings.llama_url, api_key, timeout_s=settings.rag_llm_timeout_s,
                    parallel=settings.rag_llm_parallel, upstreams=upstreams)
    sandbox = SandboxClient(http, settings.sandbox_url, settings.sandbox_signing_key.get_secret_value(),
                            issuer=issuer)
    return Engine(llm, sandbox, engine_config(settings), scorer=scorer, estimator=estimator, router=router)


def upstream_config(settings: EngineSettings) -> UpstreamConfig:
    return UpstreamConfig(discovery=settings.llama_discovery, discovery_interval_s=settings.llama_discovery_interval_s,
                          poll_interval_s=settings.llama_slots_poll_s, down_s=settings.llama_down_s)
