"""Any OpenAI-compatible chat server over httpx: OpenAI, vLLM, Ollama, LM Studio, llama.cpp.

``POST {base_url}/chat/completions`` with the messages as they are. Structured
answers ask the server to constrain decoding: ``response_format`` of type
``json_schema`` (the OpenAI form, also spoken by vLLM, Ollama and llama.cpp's
C++ server) or ``json_object`` with a ``schema`` (the form llama-cpp-python's
Python server understands), chosen per backend in the run config. The answer
is still parsed and validated here: a server that ignores the format gets an
ERROR, not a guess.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from actors.run_config import OpenAIConfig

from .errors import BackendError
from .http_base import HttpBackend, decode_event, token_count
from .structured import parse_structured
from .types import Message, Reply, Usage
from .urls import public


class OpenAIBackend(HttpBackend):
    kind = "openai"

    config: OpenAIConfig
    last_stream_usage: Usage | None = None
    """Token usage the server sent at the end of the last stream (with ``stream_usage``)."""

    def headers(self) -> dict[str, str]:
        key = self.api_key(required=True)
        return {"authorization": f"Bearer {key}"} if key else {}

    def payload(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self.config.token_limit_field: max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            body["seed"] = seed
        if schema is not None:
            if self.config.structured_output == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "answer",
                        "schema": schema,
                        # OpenAI's strict mode needs a closed object; ask for it only then.
                        "strict": schema.get("additionalProperties") is False,
                    },
                }
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
            "chat/completions",
            self.payload(messages, schema=schema, max_tokens=max_tokens, temperature=temperature, seed=seed),
            affinity=self._affinity(messages),
        )
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise BackendError(
                self.name, f"unexpected response shape (no choices[0].message): {err}", retryable=True
            ) from err
        if text is not None and not isinstance(text, str):
            raise BackendError(
                self.name,
                f"malformed answer: choices[0].message.content is {type(text).__name__} {str(text)[:40]!r}, not text",
                retryable=True,
            )
        reply = Reply(
            text=text or "",
            usage=_usage(self.name, body.get("usage")),
            latency_s=time.perf_counter() - started,
            backend=self.name,
            model=str(body.get("model") or self.model),
        )
        if schema is not None:
            data, error = parse_structured(text, schema)
            if error and choice.get("finish_reason") == "length":
                error += f" (the answer hit max_tokens={max_tokens})"
            reply = reply.model_copy(update={"data": data, "structured_error": error})
        return reply

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> AsyncIterator[str]:
        payload = self.payload(messages, schema=None, max_tokens=max_tokens, temperature=temperature, seed=seed)
        payload["stream"] = True
        if self.config.stream_usage:
            payload["stream_options"] = {"include_usage": True}
        self.last_stream_usage = None
        async with self.open_events("chat/completions", payload, affinity=self._affinity(messages)) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    return
                chunk = decode_event(self.name, event)
                if "error" in chunk:
                    raise BackendError(self.name, f"stream failed: {chunk['error']}")
                if chunk.get("usage"):
                    self.last_stream_usage = _usage(self.name, chunk["usage"])
                for choice in chunk.get("choices") or []:
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece

    def _affinity(self, messages: Sequence[Message]) -> str | None:
        """Only several replicas choose by affinity; one replica needs no key built on every call."""
        return affinity(messages) if len(self.replicas) > 1 else None

    async def health(self) -> str:
        async def check(base: str) -> str:
            body = await self.get_json("models", base)
            ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
            served = (
                "serves it"
                if self.model in ids
                else f"does not list it (serves {', '.join(map(str, ids[:3])) or 'nothing'})"
            )
            return f"{public(base)} answers; {self.model!r}: {served}"

        return await self.health_of_replicas(check)


AFFINITY_CHARS = 2048


def affinity(messages: Sequence[Message]) -> str:
    """What a call shares with its neighbours: the start of its first two messages (a judge's rubric
    and transcript, an assistant's system prompt and the conversation's opening), so calls that can
    reuse a server's prefix cache go to the same replica."""
    return "\x00".join(m.content[:AFFINITY_CHARS] for m in messages[:2])


def _usage(backend: str, raw: Any) -> Usage:
    """Token counts as the server reported them; a count that is not a whole number is a malformed answer."""
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    details = details if isinstance(details, dict) else {}
    return Usage(
        prompt_tokens=token_count(backend, "usage.prompt_tokens", raw.get("prompt_tokens")),
        cached_tokens=token_count(backend, "usage.prompt_tokens_details.cached_tokens", details.get("cached_tokens")),
        completion_tokens=token_count(backend, "usage.completion_tokens", raw.get("completion_tokens")),
    )
