"""A scripted backend for tests that need exact control over what a model says.

Never a product default: it exists so actor tests can decide every answer
(a judge that fails MT1, a simulator that breaks, a backend that times out)
and run in milliseconds. It goes through the real router, so retries,
limits and context fitting are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio

from actors.backends.base import Backend
from actors.backends.errors import BackendError
from actors.backends.types import Message, Reply, Usage

Script = Callable[[Sequence[Message], dict[str, Any] | None], str]


def default_script(messages: Sequence[Message], schema: dict | None) -> str:
    """Plausible answers for every role, decided by the prompt's shape."""
    if schema is not None:
        props = schema.get("properties", {})
        if "answer" in props:
            return json.dumps({"answer": "YES", "reasoning": "Scripted judge: looks fine."})
        if "name" in props:
            return json.dumps(
                {
                    "name": "Robin",
                    "age_range": "26-35",
                    "personality_traits": ["wry", "careful"],
                    "attachment_style": "secure",
                    "life_context": "Works in logistics, lives alone.",
                }
            )
        return "{}"
    if messages[0].role == "system":  # the assistant role: system prompt + chat history
        n = len(messages) // 2
        return (
            f"**Work:** Week {n} sounds like it pressed on you, with {n + 2} meetings in a row. "
            f"One small step for day {n} could be a walk of {n + 5} minutes after lunch.\n\n"
            f"**Sleep:** Maybe try a wind-down at {n} past ten and see what changes by morning {n}."
        )
    n = messages[-1].content.count("Coach:") + 1
    return (
        f"Work has been a lot in week {n}, and I slept badly {n} nights. "
        f"Also my sister called {n} times about the move."
    )


class ScriptedBackend(Backend):
    kind = "scripted"

    def __init__(
        self,
        name: str = "scripted",
        *,
        script: Script = default_script,
        delay_s: float = 0.0,
        fail_after: int | None = None,
        fail_when: Callable[[Sequence[Message]], bool] | None = None,
        context_window: int = 100_000,
        max_concurrency: int = 64,
    ) -> None:
        super().__init__(name, model="script", context_window=context_window, max_concurrency=max_concurrency)
        self.script = script
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.fail_when = fail_when
        self.calls = 0
        self.prompts: list[str] = []

    async def complete(self, messages, *, schema=None, max_tokens=512, temperature=0.7, seed=None) -> Reply:
        self.calls += 1
        self.prompts.append(messages[-1].content)
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        if (self.fail_after is not None and self.calls > self.fail_after) or (
            self.fail_when is not None and self.fail_when(messages)
        ):
            raise BackendError(self.name, "scripted outage", retryable=False)
        text = self.script(messages, schema)
        data, error = None, None
        if schema is not None:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                error = f"not JSON: {err.msg}"
        usage = Usage(prompt_tokens=self.count_tokens(messages), completion_tokens=len(text) // 4)
        return Reply(
            text=text,
            usage=usage,
            latency_s=self.delay_s,
            backend=self.name,
            model=self.model,
            data=data,
            structured_error=error,
        )

    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None) -> AsyncIterator[str]:
        reply = await self.complete(messages)
        for word in reply.text.split(" "):
            yield word + " "

    async def health(self) -> str:
        return "scripted"
