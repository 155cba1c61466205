"""The Claude Code CLI in print mode: ``claude -p --output-format json``.

Zero marginal cost for someone with a Claude subscription, and the original
spec's only backend. Each call is one process:

* the prompt goes on **stdin**, not argv: Linux caps one argument at 128 KiB
  and a long transcript passes that; ``claude -p`` reads its prompt from stdin
  when none is given on the command line;
* system messages become ``--system-prompt`` (folded into the prompt instead
  when they would pass the argv cap), the model ``--model``;
* earlier turns of a conversation are written into the prompt, because the
  CLI takes one prompt, not a message list;
* the run is bounded by ``timeout_s``; on timeout the process is killed.

The CLI prints one JSON result object::

    {"type": "result", "subtype": "success", "is_error": false, "result": "...",
     "usage": {"input_tokens": …, "cache_creation_input_tokens": …,
               "cache_read_input_tokens": …, "output_tokens": …},
     "total_cost_usd": …, "session_id": "…", …}

``is_error: true``, another ``subtype``, a non-zero exit, output that is not
that object, and a timeout are all retryable failures (the CLI reports rate
limits and overload that way); a missing executable is not.

The CLI has no constrained decoding, so a schema is stated in the prompt and
the text in ``result`` is parsed and validated; if it is not a valid object
the reply carries ``structured_error``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from actors.run_config import ClaudeCliConfig

from .base import Backend
from .errors import BackendError
from .structured import parse_structured, schema_instruction
from .types import Message, Reply, Usage
from .windows import default_window

ARGV_SAFE_BYTES = 100_000  # below the kernel's 128 KiB limit on a single argument
DEFAULT_MODEL_LABEL = "claude-cli-default"


class ClaudeCliBackend(Backend):
    kind = "claude_cli"

    def __init__(self, name: str, config: ClaudeCliConfig) -> None:
        self.config = config
        super().__init__(
            name,
            model=config.model or DEFAULT_MODEL_LABEL,
            context_window=config.context_window or default_window("claude_cli", config.model),
            max_concurrency=config.max_concurrency,
        )

    def command(self, messages: Sequence[Message], schema: dict[str, Any] | None) -> tuple[list[str], str]:
        """The argv and the stdin prompt for one call."""
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [m for m in messages if m.role != "system"]
        prompt_parts: list[str] = []
        argv = [self.config.executable, "-p", "--output-format", "json"]
        if self.config.model:
            argv += ["--model", self.config.model]
        if system and len(system.encode("utf-8")) <= ARGV_SAFE_BYTES:
            argv += ["--system-prompt", system]
        elif system:
            prompt_parts.append(f"<instructions>\n{system}\n</instructions>")
        argv += self.config.extra_args
        if len(turns) > 1:
            history = "\n".join(f"<{m.role}>\n{m.content}\n</{m.role}>" for m in turns[:-1])
            prompt_parts.append(f"Earlier turns of this conversation:\n{history}")
        if turns:
            prompt_parts.append(turns[-1].content)
        if schema is not None:
            prompt_parts.append(schema_instruction(schema))
        return argv, "\n\n".join(prompt_parts)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Reply:
        """One CLI run. The CLI has no max_tokens, temperature or seed flags; they are not sent."""
        argv, prompt = self.command(messages, schema)
        started = time.perf_counter()
        done = await self._run(argv, prompt)
        result = self._result_object(done)
        text = result.get("result")
        if not isinstance(text, str):
            raise BackendError(self.name, "the CLI's result object has no 'result' text", retryable=True)
        reply = Reply(
            text=text,
            usage=_usage(result.get("usage")),
            latency_s=time.perf_counter() - started,
            backend=self.name,
            model=_model_of(result) or self.model,
        )
        if schema is not None:
            data, error = parse_structured(text, schema)
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
        """The CLI's JSON mode answers at once; the whole answer is one piece."""
        reply = await self.complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        yield reply.text

    async def health(self) -> str:
        if shutil.which(self.config.executable) is None:
            raise BackendError(self.name, f"{self.config.executable!r} is not on PATH (install Claude Code)")
        done = await self._run([self.config.executable, "--version"], "", timeout_s=30)
        if done.returncode != 0:
            raise BackendError(self.name, f"'{self.config.executable} --version' failed: {_tail(done.stderr)}")
        return f"{self.config.executable} {done.stdout.decode(errors='replace').strip()}"

    async def _run(
        self, argv: list[str], prompt: str, *, timeout_s: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        limit = timeout_s or self.config.timeout_s
        try:
            with anyio.fail_after(limit):
                data = prompt.encode("utf-8")
                # Without a prompt, stdin is closed: the CLI must never wait on the terminal.
                stdin = None if data else subprocess.DEVNULL
                return await anyio.run_process(argv, input=data or None, stdin=stdin, check=False)
        except TimeoutError:
            raise BackendError(self.name, f"the CLI did not answer within {limit}s (killed)", retryable=True) from None
        except FileNotFoundError:
            raise BackendError(self.name, f"{argv[0]!r} is not on PATH (install Claude Code)") from None
        except PermissionError:
            raise BackendError(self.name, f"{argv[0]!r} is not executable") from None

    def _result_object(self, done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
        stdout = done.stdout.decode("utf-8", errors="replace").strip()
        try:
            parsed: Any = json.loads(stdout) if stdout else None
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):  # --verbose prints every message; the result is the last one
            parsed = next(
                (item for item in reversed(parsed) if isinstance(item, dict) and item.get("type") == "result"), None
            )
        if not isinstance(parsed, dict) or parsed.get("type") != "result":
            if done.returncode != 0:
                cause = f"the CLI exited with status {done.returncode}: {_tail(done.stderr) or _tail(done.stdout)}"
            else:
                cause = f"the CLI printed something that is not its JSON result: {stdout[:120]!r}"
            raise BackendError(self.name, cause, retryable=True)
        if parsed.get("is_error") or parsed.get("subtype") != "success" or done.returncode != 0:
            detail = parsed.get("result") or _tail(done.stderr) or "no detail"
            raise BackendError(
                self.name,
                f"the CLI reported an error ({parsed.get('subtype')}, exit {done.returncode}): {str(detail)[:300]}",
                retryable=True,
            )
        return parsed


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    read = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + written + read,
        cached_tokens=read,
        completion_tokens=int(raw.get("output_tokens") or 0),
    )


def _model_of(result: dict[str, Any]) -> str | None:
    models = result.get("modelUsage")
    if isinstance(models, dict) and models:
        return str(next(iter(models)))
    return None


def _tail(raw: bytes | None, limit: int = 300) -> str:
    text = (raw or b"").decode("utf-8", errors="replace").strip()
    return text[-limit:]
