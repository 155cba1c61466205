"""Trying the configured model backends: which ones a run would use, are they reachable, what does one say.

`coach models` and `coach ask` are the faces. Both read a run config (the
default has every role on the bundled SmolLM2, no network); problems the
user can fix (a bad config, an unknown role, an unreachable backend) arrive
as `CoachError`s, one line each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actors.backends import BackendError, Message, Reply
from actors.run_config import RunConfig

__all__ = ["BackendStatus", "ask_model", "backend_statuses"]


@dataclass(frozen=True)
class BackendStatus:
    name: str
    kind: str
    model: str
    window: int | None
    window_problem: str | None
    """Why the context window could not be read (a missing model file, say)."""
    roles: tuple[str, ...]
    health: str | BackendError | None
    """What the backend says about itself, the error that says why not, or None when not checked."""


async def backend_statuses(config: RunConfig, *, check: bool = True) -> list[BackendStatus]:
    """Every configured backend with the roles using it; with `check`, each is contacted (a local model loaded)."""
    from actors.backends.router import ModelRouter

    async with ModelRouter.from_config(config) as router:
        health = await router.health() if check else {}
        out = []
        for name, backend in router.backends.items():
            try:
                window, problem = backend.context_window, None
            except Exception as err:  # noqa: BLE001 - shown in the table, never fatal to the listing
                window, problem = None, str(err)
            out.append(
                BackendStatus(
                    name,
                    backend.kind,
                    backend.model,
                    window,
                    problem,
                    tuple(config.roles_using(name)),
                    health.get(name),
                )
            )
    return out


async def ask_model(
    config: RunConfig,
    role: str,
    messages: Sequence[Message],
    *,
    max_tokens: int = 256,
    temperature: float = 0.7,
    seed: int | None = None,
    backend: str | None = None,
) -> Reply:
    """One call to `role`'s backend (or the one named among them), with the router's retries and limits."""
    from actors.backends.router import ModelRouter

    async with ModelRouter.from_config(config) as router:
        return await router.ask(
            role, list(messages), max_tokens=max_tokens, temperature=temperature, seed=seed, backend=backend
        )
