"""The public request and response bodies of `POST /v1/chat`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator

MAX_CONTENT_CHARS = 32_000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant", "system"]
    content: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CONTENT_CHARS)
    ]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")
    # Strict, as the schema says and the vendors' APIs refuse: "5" is not an integer, 0 not a boolean.
    max_tokens: StrictInt = Field(default=1024, ge=1, le=8192)
    temperature: float = Field(default=0.7, ge=0.0, le=1.0, strict=True)
    stream: StrictBool = False

    @model_validator(mode="after")
    def _last_is_user(self) -> ChatRequest:
        if self.messages[-1].role != "user":
            raise ValueError("the last message must have role 'user'")
        return self


class ChatResponse(BaseModel):
    id: str
    content: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None


class ErrorBody(BaseModel):
    type: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
