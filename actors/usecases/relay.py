"""A bus's events handed to a face's callback: how a use case reports progress without knowing who draws it.

The CLI prints a line per event, the app redraws a widget; the use case only
takes a callback. Events the work published before it ended are all
delivered before `relaying` returns, so the last line printed is never lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from actors.events import EventBus

T = TypeVar("T")

OnEvent = Callable[[Any], None]
"""Receives each event: a pipeline event from the bus, or a use case's own typed note."""


async def relaying(bus: EventBus, on_event: OnEvent | None, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` while every event published on `bus` reaches `on_event`; then close the bus.

    An error from `work` is raised as itself, not wrapped in an exception group,
    so a `CoachError` still reaches the face as one clear line.
    """
    if on_event is None:
        try:
            return await work()
        finally:
            bus.close()
    receive = bus.subscribe()

    async def forward() -> None:
        async with receive:
            async for event in receive:
                on_event(event)

    outcome: list[T] = []
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(forward)
        try:
            outcome.append(await work())
        except Exception as err:  # noqa: BLE001 - re-raised below, outside the task group, so not wrapped in a group
            error = err
        finally:
            bus.close()
    if error is not None:
        raise error
    return outcome[0]
