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
        1, ge=1, le=64, description="Generation requests in flight at once (raise it for llama.cpp's -np N).")
    rag_llm_timeout_s: float = Field(300.0, gt=0, description="How long one generation request may take.")
    rag_lens: bool = Field(
        True, description="Let the Geometric Lens order the candidates the tests and checks leave tied, when its "
        "weights are live (a request's budget.lens overrides it).")
