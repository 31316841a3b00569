"""rag-api settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atlas_core.settings import HttpUrl, LlamaClientSettings, Port, SandboxClientSettings, ServiceSettings


class EngineSettings(LlamaClientSettings, SandboxClientSettings):
    """The verified-generation engine's defaults: rag-api and the task-worker run the same engine."""

    rag_k: int = Field(5, ge=1, le=20, description="Candidates a verified solve generates unless its budget says.")
    rag_max_tokens: int = Field(512, ge=16, le=8192, description="Completion tokens per candidate by default.")
    rag_repair_rounds: int = Field(2, ge=0, le=5, description="Repair rounds when no candidate passes, by default.")
    rag_deadline_s: float = Field(120.0, gt=0, le=3600, description="Wall-clock limit of one solve by default.")
    rag_self_tests: bool = Field(True, description="Let the model write tests to rank candidates by (CodeT).")
    rag_prompt_style: Literal["chat", "completion"] = Field(
        "chat", description="chat: the model's chat template (instruct models); completion: the model continues "
        "the problem as code (base models such as gemma-3-270m).")
    rag_llm_parallel: int = Field(
        1, ge=1, le=64, description="Generation requests in flight at once (raise it for llama.cpp's -np N).")
    rag_llm_timeout_s: float = Field(300.0, gt=0, description="How long one generation request may take.")


class TaskSettings(ServiceSettings):
    """The durable task queue, as rag-api (which accepts tasks) and the task-workers (which run them) see it."""

    task_ttl_s: int = Field(
        7 * 86400, ge=60, le=90 * 86400,
        description="How long a task's record, attempts and events are kept after their last change.")


class Settings(EngineSettings, TaskSettings):
    port: Port = Field(8001, validation_alias="ATLAS_RAG_PORT", description="rag-api HTTP port.")
    embed_url: HttpUrl = Field("http://127.0.0.1:8081", description="Base URL of llama-server B (embeddings).")
    rag_max_concurrent: int = Field(
        8, ge=1, le=1000, description="Solves running at once; more get 503 with Retry-After.")
    task_max_queued: int = Field(
        10_000, ge=1, le=10_000_000,
        description="Tasks waiting or running at once; more submissions get 429 until the queue drains.")
    task_max_attempts: int = Field(3, ge=1, le=20, description="Attempts a task gets unless it asks otherwise.")
    task_deadline_s: float = Field(
        1800.0, gt=0, le=86400, description="Wall-clock limit of a task, from submission, unless it asks otherwise.")
