"""The Lens's settings, shared by rag-api, the task-workers and the trainer (``atlas lens``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from atlas_core.settings import HttpUrl, LlamaClientSettings
from atlas_lens.features import Source


class LensSettings(LlamaClientSettings):
    embed_url: HttpUrl = Field("http://127.0.0.1:8081", description="Base URL of llama-server B (embeddings).")
    lens_features: Source = Field(
        "embed", description="What the Lens reads: embed (the embedding server's vector of the code) or main (the "
        "main model's own mean-pooled embeddings of problem + code, from ATLAS_LENS_MAIN_EMBED_URL). Weights "
        "trained on the other source are refused.")
    lens_main_embed_url: HttpUrl | None = Field(
        None, description="A llama.cpp server of the main model's GGUF with embeddings on (ATLAS_LENS_FEATURES=main "
        "only; llama.cpp serves embeddings from a separate instance).")
    lens_reload_s: float = Field(
        10.0, ge=0.5, le=3600, description="How often a service checks for newly published Lens weights.")
    lens_min_auc: float = Field(
        0.55, ge=0.0, le=1.0, description="Validation AUC new Lens weights need before they may go live at all (a "
        "verifier at chance level orders nothing); `atlas lens train --force` overrides it.")
    lens_keep: int = Field(5, ge=2, le=100, description="Weight versions kept on disk (the live one and the one "
                           "before it always are).")
    lens_difficulty: bool = Field(True, description="Estimate each problem's difficulty with G(x) (for the result "
                                  "and a router) when the weights carry it.")
    lens_timeout_s: float = Field(10.0, gt=0, le=120, description="How long the Lens waits for embeddings before "
                                  "it gives no opinion (the solve goes on without it).")
    lens_learn: Literal["off", "listed", "all"] = Field(
        "off", description="Whose verified outcomes are kept for training (their code included): off (nobody), "
        "listed (the users `atlas lens learn USER` turned on) or all.")
    lens_feedback_per_user: int = Field(
        2000, ge=1, le=1_000_000, description="Solve records kept per user for training (oldest dropped).")
    lens_feedback_users: int = Field(
        1000, ge=1, le=1_000_000, description="Users whose records are kept; beyond, the least recently active "
        "user's records are deleted.")
    lens_feedback_days: float = Field(
        30.0, gt=0, le=3650, description="Days a user's records are kept after their last recorded solve.")
    lens_feedback_pending: int = Field(
        16, ge=1, le=1000, description="Records being written at once per process; beyond, records are dropped "
        "(counted), never waited for by a request.")

    @model_validator(mode="after")
    def _main_needs_url(self) -> LensSettings:
        if self.lens_features == "main" and self.lens_main_embed_url is None:
            raise ValueError("ATLAS_LENS_FEATURES=main needs ATLAS_LENS_MAIN_EMBED_URL (a llama.cpp server of the "
                             "main model with embeddings on)")
        return self

    def features_url(self) -> str:
        if self.lens_features == "main" and self.lens_main_embed_url is not None:
            return self.lens_main_embed_url
        return self.embed_url
