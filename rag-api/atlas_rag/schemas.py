"""The ``atlas`` extension of OpenAI's chat completions, as rag-api reads it (the solve's own contract is
``atlas_engine.contracts``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from atlas_core.schemas import Strict
from atlas_engine import MAX_TEXT, Budget, Language, ProjectRef, TestIn

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatExtension(Strict):
    """The ``atlas`` field of a chat completion request: what /v1/solve takes besides the problem."""

    language: Language | None = None
    tests: list[TestIn] = Field(default_factory=list, max_length=1000)
    entry_point: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)
    budget: Budget = Field(default_factory=Budget)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    verify: bool | None = Field(None, description="true: always run the pipeline; false: never (plain chat).")
    project: ProjectRef | None = Field(
        None, description="Retrieve from this project of yours (the X-Atlas-Project header "
        "names one too; this field wins).")


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request, as far as rag-api reads it (other fields pass through): any turn
    of a conversation, an assistant's tool calls (its content then may be null) and the tools' results."""

    model_config = ConfigDict(extra="allow")
    role: Role
    content: (Annotated[str, Field(max_length=MAX_TEXT)] | Annotated[list[dict[str, Any]], Field(max_length=1000)]
              | None) = None
    name: str | None = Field(None, max_length=200)
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=1000)
    tool_call_id: str | None = Field(None, max_length=200)


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions`` for the ``atlas`` model: OpenAI's fields (the agent path passes them all to
    the model, ``tools`` and ``tool_choice`` included) and the ``atlas`` extension."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: dict[str, bool] | None = Field(None, max_length=4)
    max_tokens: int | None = Field(None, ge=1, le=10_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=10_000_000)
    tools: list[dict[str, Any]] | None = Field(None, max_length=1000)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    atlas: ChatExtension | None = None
