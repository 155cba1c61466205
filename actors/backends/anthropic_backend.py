"""Claude through the Messages API (``POST /v1/messages``) over httpx.

Request shape, as documented for ``anthropic-version: 2023-06-01``:

* headers ``x-api-key``, ``anthropic-version``, ``content-type: application/json``;
* ``system`` as a list of text blocks, the last one carrying
  ``cache_control: {"type": "ephemeral"}``: the system prompt, persona and
  any shared context are the long prefix every call of a run repeats, so
  they are written to the prompt cache once and read back at a tenth of the
  price. A second breakpoint goes on the message before the last, so a
  growing conversation reuses its history too;
* consecutive messages of one role are merged into one turn of several blocks;
* ``temperature`` is clamped to the API's 0..1; ``seed`` has no counterpart.

Structured answers use tool use: a single tool named ``answer`` whose
``input_schema`` is the schema, forced with ``tool_choice: {"type": "tool",
"name": "answer"}``; the tool call's ``input`` is validated against the schema
and a missing or invalid one is a ``structured_error``.

Usage: ``input_tokens`` counts only uncached input, so the prompt is
``input_tokens + cache_creation_input_tokens + cache_read_input_tokens`` and
the cached part is ``cache_read_input_tokens``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from actors.run_config import AnthropicConfig

from .errors import BackendError
from .http_base import HttpBackend, decode_event, token_count
from .structured import check_object
from .types import Message, Reply, Usage
from .urls import join, public

TOOL_NAME = "answer"
EPHEMERAL = {"type": "ephemeral"}
# Anthropic's stream `error` event types that mean "try again later".
RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class AnthropicBackend(HttpBackend):
    kind = "anthropic"

    config: AnthropicConfig

    def url(self, path: str, base: str | None = None) -> str:
        return join(base or self.base_url, f"v1/{path.lstrip('/')}")

    def headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.api_key(required=True) or "",
            "anthropic-version": self.config.anthropic_version,
        }

    def payload(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None,
        max_tokens: int,
        temperature: float,
    ) -> dict[str, Any]:
        system = [{"type": "text", "text": m.content} for m in messages if m.role == "system" and m.content]
        if system:
            system[-1]["cache_control"] = EPHEMERAL
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            block = {"type": "text", "text": m.content}
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"].append(block)
            else:
                turns.append({"role": m.role, "content": [block]})
        if len(turns) >= 2:
            turns[-2]["content"][-1]["cache_control"] = EPHEMERAL
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": min(max(temperature, 0.0), 1.0),
            "messages": turns,
        }
        if system:
            body["system"] = system
        if schema is not None:
            body["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Record the answer. Call this exactly once with the complete answer.",
                    "input_schema": schema,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return body

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Reply:
        started = time.perf_counter()
        body = await self.post_json(
            "messages", self.payload(messages, schema=schema, max_tokens=max_tokens, temperature=temperature)
        )
        content = body.get("content")
        if not isinstance(content, list):
            raise BackendError(self.name, "unexpected response shape (no content list)", retryable=True)
        pieces = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if not all(isinstance(p, str) for p in pieces):
            raise BackendError(self.name, "malformed answer: a text block's text is not text", retryable=True)
        text = "".join(pieces)
        data: dict[str, Any] | None = None
        error: str | None = None
        if schema is not None:
            call = next(
                (
                    b
                    for b in content
                    if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("name") == TOOL_NAME
                ),
                None,
            )
            if call is None:
                error = f"no {TOOL_NAME!r} tool call in the answer (stop_reason {body.get('stop_reason')})"
            else:
                data, error = check_object(call.get("input"), schema)
                text = json.dumps(call.get("input"), ensure_ascii=False)
            if error and body.get("stop_reason") == "max_tokens":
                error += f" (the answer hit max_tokens={max_tokens})"
        return Reply(
            text=text,
            usage=_usage(self.name, body.get("usage")),
            latency_s=time.perf_counter() - started,
            backend=self.name,
            model=str(body.get("model") or self.model),
            data=data,
            structured_error=error,
        )

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> AsyncIterator[str]:
        payload = self.payload(messages, schema=None, max_tokens=max_tokens, temperature=temperature)
        payload["stream"] = True
        async with self.open_events("messages", payload) as events:
            async for event in events:
                if event.event == "ping":
                    continue
                data = decode_event(self.name, event)
                kind = data.get("type", event.event)
                if kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield delta["text"]
                elif kind == "error":
                    error = data.get("error") or {}
                    raise BackendError(
                        self.name,
                        f"stream failed: {error.get('type')}: {error.get('message')}",
                        retryable=error.get("type") in RETRYABLE_STREAM_ERRORS,
                    )
                elif kind == "message_stop":
                    return

    async def health(self) -> str:
        body = await self.get_json("models")
        ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
        listed = "listed" if self.model in ids else "not in the first page of models"
        return f"{public(self.base_url)} answers; {self.model!r} {listed}"


def _usage(backend: str, raw: Any) -> Usage:
    """Token counts as the API reported them; a count that is not a whole number is a malformed answer."""
    if not isinstance(raw, dict):
        return Usage()
    uncached = token_count(backend, "usage.input_tokens", raw.get("input_tokens"))
    written = token_count(backend, "usage.cache_creation_input_tokens", raw.get("cache_creation_input_tokens"))
    read = token_count(backend, "usage.cache_read_input_tokens", raw.get("cache_read_input_tokens"))
    return Usage(
        prompt_tokens=uncached + written + read,
        cached_tokens=read,
        completion_tokens=token_count(backend, "usage.output_tokens", raw.get("output_tokens")),
    )
