"""``ModelRouter``: the one object actors use to talk to models.

Actors say *which role* is asking (``judge``, ``assistant`` …), never which
vendor. The router looks the role up in the run config and, around each
backend's single attempt, applies what must be the same everywhere:

1. context fitting: the request is trimmed or refused by the role's
   ``on_overflow`` (see ``context``), using the backend's own token count;
2. the backend's concurrency limit, held for the duration of the attempt;
3. retries of retryable failures, with backoff and jitter (``retry``);
4. re-asks of unparsable structured answers, at most ``structured_retries``;
5. the final failure as ``BackendError`` naming backend, role, tries and cause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread

from actors.pack.problems import Problem
from actors.run_config import RunConfig, RunConfigError, load_run_config

from .base import Backend
from .context import ContextOverflow, Fitted, fit_messages
from .errors import BackendError
from .factory import build_backend
from .retry import RetryPolicy, structured_retrying, transport_retrying
from .types import Message, Reply

# Chat templates add role markers and separators; SmolLM2's also adds a default
# system prompt when none is given. Generous per-message and fixed allowances:
TEMPLATE_TOKENS_PER_MESSAGE = 32
TEMPLATE_TOKENS_FIXED = 64


def surely_fits(messages: Sequence[Message], window: int, max_tokens: int) -> bool:
    """True when the request fits whatever the tokenizer: every token covers at least one byte.

    Lets the router skip exact counting for the common short request; a
    backend with a hard window (llama.cpp) still checks the exact count itself.
    """
    upper = sum(len(m.content.encode("utf-8")) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    return upper + TEMPLATE_TOKENS_FIXED + max_tokens <= window


class ModelRouter:
    def __init__(self, config: RunConfig, backends: Mapping[str, Backend]) -> None:
        self.config = config
        self._backends = dict(backends)
        self._policies = {
            name: RetryPolicy(
                max_retries=settings.max_retries,
                backoff_initial_s=settings.backoff_initial_s,
                backoff_max_s=settings.backoff_max_s,
                structured_retries=settings.structured_retries,
            )
            for name, settings in config.all_backends().items()
        }

    @classmethod
    def from_config(cls, config: RunConfig | None = None) -> ModelRouter:
        """Backends for every configured name (nothing is loaded or connected yet)."""
        config = config if config is not None else load_run_config()
        problems = config.problems()
        if problems:
            shown = str(config.source or "(in code)")
            raise RunConfigError(shown, [Problem(shown, field, message) for field, message in problems])
        backends = {name: build_backend(name, settings, config) for name, settings in config.all_backends().items()}
        return cls(config, backends)

    # -- lookup ------------------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, Backend]:
        return dict(self._backends)

    def backends_for(self, role: str) -> list[Backend]:
        return [self._backends[name] for name in self.config.role(role).backends]

    def backend_for(self, role: str, backend: str | None = None) -> Backend:
        """The role's backend: its first, or the named one (a judge may have several)."""
        candidates = self.backends_for(role)
        if backend is None:
            return candidates[0]
        for candidate in candidates:
            if candidate.name == backend:
                return candidate
        raise BackendError(
            backend, f"not a backend of role {role} (it uses {', '.join(b.name for b in candidates)})", role=role
        )

    # -- calls -------------------------------------------------------------------------------

    async def ask(
        self,
        role: str,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
        backend: str | None = None,
    ) -> Reply:
        """One answer for ``role``, with fitting, limits, retries and re-asks applied."""
        target = self.backend_for(role, backend)
        fitted = await self._fit(role, target, _messages(messages), max_tokens)
        policy = self._policies[target.name]

        async def attempt() -> Reply:
            async with target.limiter:
                return await target.complete(
                    fitted.messages, schema=schema, max_tokens=max_tokens, temperature=temperature, seed=seed
                )

        async def with_retries() -> Reply:
            retrying = transport_retrying(policy)
            try:
                return await retrying(attempt)
            except BackendError as err:
                raise err.for_role(role, retrying.statistics.get("attempt_number", 1)) from err

        reply = await structured_retrying(policy)(with_retries) if schema is not None else await with_retries()
        if fitted.trimmed:
            reply = reply.model_copy(
                update={"usage": reply.usage.model_copy(update={"trimmed_messages": fitted.trimmed})}
            )
        return reply

    async def stream(
        self,
        role: str,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
        backend: str | None = None,
    ) -> AsyncIterator[str]:
        """The answer in pieces, for chat: fitted and limited like ``ask``, but not retried."""
        target = self.backend_for(role, backend)
        fitted = await self._fit(role, target, _messages(messages), max_tokens)
        async with target.limiter:
            try:
                async for piece in target.stream(
                    fitted.messages, max_tokens=max_tokens, temperature=temperature, seed=seed
                ):
                    yield piece
            except BackendError as err:
                raise err.for_role(role, 1) from err

    async def health(self, timeout_s: float = 20.0) -> dict[str, str | BackendError]:
        """Every backend's health at once: its description, or the error that says why not."""
        results: dict[str, str | BackendError] = {}

        async def check(name: str, backend: Backend) -> None:
            try:
                with anyio.fail_after(timeout_s):
                    results[name] = await backend.health()
            except BackendError as err:
                results[name] = err
            except TimeoutError:
                results[name] = BackendError(name, f"no answer within {timeout_s}s")

        async with anyio.create_task_group() as group:
            for name, backend in self._backends.items():
                group.start_soon(check, name, backend)
        return {name: results[name] for name in self._backends}

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()

    async def __aenter__(self) -> ModelRouter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- helpers -----------------------------------------------------------------------------

    async def _fit(self, role: str, target: Backend, messages: list[Message], max_tokens: int) -> Fitted:
        # A local model's window may have to be read from its file: not on the event loop. Once known,
        # no thread hop: at 32 calls in flight it was a visible share of the supervisor's CPU.
        window = target.known_context_window or await anyio.to_thread.run_sync(lambda: target.context_window)
        if surely_fits(messages, window, max_tokens):
            return Fitted(messages, 0, 0)
        on_overflow = self.config.role(role).on_overflow

        def fit() -> Fitted:
            return fit_messages(
                messages,
                window=window,
                max_tokens=max_tokens,
                count_tokens=target.count_tokens,
                on_overflow=on_overflow,
            )

        try:
            return await anyio.to_thread.run_sync(fit) if target.tokenizes_locally else fit()
        except ContextOverflow as err:
            raise BackendError(target.name, str(err), role=role) from err


def _messages(messages: Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    if not messages:
        raise ValueError("a request needs at least one message")
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
