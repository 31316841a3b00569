"""The engine's settings: its defaults and how it reaches the model and the sandbox. rag-api and the task-workers
run the same engine with the same keys (and the proxy reserves tokens by the same budget defaults,
``atlas_core.budget``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atlas_core.budget import BudgetDefaults
from atlas_core.settings import LlamaClientSettings, SandboxClientSettings


class EngineSettings(LlamaClientSettings, SandboxClientSettings, BudgetDefaults):
    """The verified-generation engine's defaults."""

    rag_deadline_s: float = Field(120.0, gt=0, le=3600, description="Wall-clock limit of one solve by default.")
    rag_prompt_style: Literal["chat", "completion"] = Field(
        "chat", description="chat: the model's chat template (instruct models); completion: the model continues "
        "the problem as code (base models such as gemma-3-270m).")
    rag_llm_parallel: int = Field(
        1, ge=1, le=64, description="Generation requests this process has in flight at once, over every replica "
        "of llama-server A (raise it for llama.cpp's -np N, or for several replicas).")
    llama_discovery: Literal["none", "dns"] = Field(
        "none", description="How the replicas of llama-server A are found: none: ATLAS_LLAMA_URL is the one server; "
        "dns: its host name is resolved to every address (A and AAAA; a Kubernetes headless Service lists each "
        "ready pod), each a replica on the URL's port, and each request goes to the one with the most free slots.")
    llama_discovery_interval_s: float = Field(
        5.0, ge=0.5, le=300, description="How often the name of llama-server A is resolved again "
        "(ATLAS_LLAMA_DISCOVERY=dns).")
    llama_slots_poll_s: float = Field(
        1.0, ge=0.1, le=60, description="How often, at most, each replica's free slots are read from its /slots "
        "while requests flow (only with several replicas; llama-cpp-python's are counted locally, 1 each).")
    llama_down_s: float = Field(
        3.0, ge=0.1, le=300, description="How long a replica of llama-server A is skipped after it refused a "
        "connection or answered 502, 503 or 504.")
    rag_llm_timeout_s: float = Field(300.0, gt=0, description="How long one generation request may take.")
    rag_lens: bool = Field(
        True, description="Let the Geometric Lens order the candidates the tests and checks leave tied, when its "
        "weights are live (a request's budget.lens overrides it).")
