"""A scripted OpenAI-compatible chat server for runs that cross processes (a `coach run` subprocess,
the app, a second resumer): every role on one loopback server that answers from a script and records
each request, so a test can read the `max_tokens` each call really carried.

The answers are `tests.scripted`'s, through the real OpenAI backend (HTTP, parsing, retries).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from actors.backends.types import Message
from tests.conftest import Canned, Recorded, ScriptedServer
from tests.scripted import default_script

Script = Callable[[Sequence[Message], dict | None], str]


def messages_of(body: dict) -> list[Message]:
    return [Message(role=m["role"], content=m["content"]) for m in body.get("messages", [])]


def schema_of(body: dict) -> dict | None:
    fmt = body.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")


def is_judge_like(body: dict) -> bool:
    """Structured calls (judge, entailment, persona) keep their own token budgets."""
    return body.get("response_format") is not None


class OpenAIScript:
    """Answers `/v1/chat/completions` from ``script``; ``delay_s`` per answer; ``malformed`` may spoil one."""

    def __init__(
        self,
        script: Script = default_script,
        *,
        delay_s: float = 0.0,
        malformed: Callable[[Recorded], dict | None] | None = None,
    ) -> None:
        self.script = script
        self.delay_s = delay_s
        self.malformed = malformed
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, recorded: Recorded) -> Canned:
        with self._lock:
            self.calls += 1
        if recorded.path.endswith("/models"):
            return Canned(200, {"data": [{"id": "scripted"}]})
        body = recorded.body if isinstance(recorded.body, dict) else {}
        if self.malformed is not None and (spoiled := self.malformed(recorded)) is not None:
            return Canned(200, spoiled, delay_s=self.delay_s)
        text = self.script(messages_of(body), schema_of(body))
        return Canned(
            200,
            {
                "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": sum(len(m.get("content", "")) for m in body.get("messages", [])) // 4,
                    "completion_tokens": len(text) // 4,
                },
            },
            delay_s=self.delay_s,
        )


def write_run_config(path: Path, server: ScriptedServer, **backend: object) -> Path:
    """A run config naming one OpenAI-compatible backend, `srv`, for every role."""
    settings = {
        "kind": "openai",
        "model": "scripted",
        "base_url": f"{server.url}/v1",
        "context_window": 100_000,
        "max_concurrency": 16,
        "max_retries": 0,
        "timeout_s": 30,
        **backend,
    }
    roles = {role: "srv" for role in ("persona", "user_sim", "assistant", "fixup", "eval_target")}
    roles["judge"] = {"backends": ["srv"]}
    path.write_text(json.dumps({"backends": {"srv": settings}, "roles": roles}), encoding="utf-8")
    return path


def chat_posts(server: ScriptedServer) -> list[Recorded]:
    return server.posts("/v1/chat/completions")
