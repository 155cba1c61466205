"""The values every backend speaks: chat messages in, a reply with its usage out.

They are pydantic models so actors can store them as they are (the store keeps
usage per call) and so a bad role or a missing field fails where it is made,
not three layers down in a vendor's error message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat turn. System messages carry the long shared context (persona, rubric, transcript)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class Usage(BaseModel):
    """Token accounting for one call.

    ``prompt_tokens`` counts every prompt token the model saw, cached or not;
    ``cached_tokens`` is the part of it that was not evaluated again (llama.cpp
    KV reuse, Anthropic cache reads, an OpenAI-compatible server's cached
    tokens). ``trimmed_messages`` is how many old messages the context rule
    dropped to make the request fit.
    """

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    trimmed_messages: int = Field(default=0, ge=0)

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens the model actually had to process this time."""
        return self.prompt_tokens - self.cached_tokens


class Reply(BaseModel):
    """What a call gave back.

    When a schema was asked for, exactly one of ``data`` and
    ``structured_error`` is set: the parsed, schema-valid object, or why the
    answer was not one. Callers record an unparsable answer as ERROR; nothing
    here ever guesses at what a broken answer meant.
    """

    model_config = ConfigDict(extra="forbid")

    text: str
    usage: Usage
    latency_s: float = Field(ge=0)
    backend: str
    model: str
    data: dict[str, Any] | None = None
    structured_error: str | None = None

    @property
    def ok(self) -> bool:
        """False only when a structured answer was asked for and did not come back valid."""
        return self.structured_error is None
