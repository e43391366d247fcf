"""Request bodies of the OpenAI-compatible routes (only the fields the gateway reads are declared; every other
field is passed to the backend unchanged) and the operator's backend body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridshift.service.gateway.config import BackendSpec

MODEL = Field(min_length=1, max_length=256, description="A model listed by GET /v1/models.")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = MODEL
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    service_tier: str | None = Field(default=None, description="'flex' routes as the offline SLO class.")


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = MODEL
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    service_tier: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = MODEL
    input: str | list[str] | list[int] | list[list[int]]
    service_tier: str | None = None


class BackendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(min_length=1, max_length=64)
    backend: BackendSpec


SloHeader = Literal["interactive", "offline"]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str = Field(min_length=1, max_length=64, examples=["/v1/chat/completions"])
    completion_window: str = Field(min_length=1, max_length=8, examples=["24h"])
    metadata: dict[str, str] | None = None
