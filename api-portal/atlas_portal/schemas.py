"""Request and response bodies of the portal API (ATLAS-compatible field names)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


MAX_PASSWORD = 256
MAX_LOGIN = 254  # an email address at most
Limit = Field(None, ge=0, le=1_000_000_000)


class RegisterRequest(BaseModel):
    email: str = Field(max_length=MAX_LOGIN)
    username: str = Field(max_length=64)
    password: str = Field(min_length=10, max_length=MAX_PASSWORD)
    is_admin: bool = False

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.match(value):
            raise ValueError("use 3 to 64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("must be an email address like name@example.com")
        return value.lower()


class LoginRequest(BaseModel):
    username: str | None = Field(None, max_length=MAX_LOGIN, description="username, or an email address")
    email: str | None = Field(None, max_length=MAX_LOGIN)
    password: str = Field(max_length=MAX_PASSWORD)

    @model_validator(mode="after")
    def _who(self) -> LoginRequest:
        if not (self.username or self.email):
            raise ValueError("give 'username' or 'email'")
        return self


class UserLimits(BaseModel):
    """A user's limits, shared by all their keys (0 = unlimited)."""

    rate_limit: int
    tokens_per_min: int
    max_concurrent: int
    max_streams: int
    max_queued_tasks: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    is_admin: bool
    is_active: bool
    created_at: dt.datetime
    limits: UserLimits | None = None  # the effective values, defaults filled in


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)
    expires_in: int
    user: UserOut


class UserUpdate(BaseModel):
    """An admin's change to a user. A limit set to null goes back to the default (ATLAS_USER_DEFAULT_*)."""

    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = None
    is_admin: bool | None = None
    password: str | None = Field(None, min_length=10, max_length=MAX_PASSWORD,
                                 description="a new password; every session of the user ends")
    rate_limit: int | None = Limit
    tokens_per_min: int | None = Limit
    max_concurrent: int | None = Field(None, ge=0, le=100_000)
    max_streams: int | None = Field(None, ge=0, le=100_000)
    max_queued_tasks: int | None = Field(None, ge=0, le=10_000_000)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=MAX_PASSWORD)
    new_password: str = Field(min_length=10, max_length=MAX_PASSWORD)


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field("admin", min_length=1, max_length=MAX_LOGIN)


class RecoverOut(BaseModel):
    username: str
    password: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    rate_limit: int | None = Field(None, ge=0, le=1_000_000, description="requests per minute; 0 = unlimited")
    tokens_per_min: int | None = Field(None, ge=0, le=1_000_000_000)
    max_concurrent: int | None = Field(None, ge=0, le=10_000)
    max_streams: int | None = Field(None, ge=0, le=10_000, description="task event streams open at once")
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=100)
    expires_days: int | None = Field(None, ge=1, le=3650)


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    rate_limit: int
    tokens_per_min: int
    max_concurrent: int
    max_streams: int | None
    allowed_models: list[str] | None
    expires_at: dt.datetime | None
    is_active: bool
    created_at: dt.datetime


class KeyCreated(KeyOut):
    key: str = Field(description="the full key; shown this once, never stored")


class ValidateRequest(BaseModel):
    key: str = Field(max_length=200)


class UsageRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    user_id: int
    username: str | None = Field(None, description="null once the user is deleted (user_id stays)")
    key_id: int
    key_name: str | None = Field(None, description="null once the key is deleted (key_id stays)")
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms_total: int


class UsageOut(BaseModel):
    rows: list[UsageRow]
    requests: int
    prompt_tokens: int
    completion_tokens: int


class ModelUpdate(BaseModel):
    display_name: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_.:\-/]+$")
    hidden: bool | None = None


class BootstrapOut(BaseModel):
    username: str
    password: str
    key: str
