"""In-memory events: what the TUI and the headless progress view draw.

The durable record is the store (each step commits its own event row); this
bus only tells live subscribers, right after the commit, so the UI never
polls the database in a loop. A subscriber that falls far behind loses the
oldest live events, never the data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


@dataclass(frozen=True)
class PipelineEvent:
    kind: str
    run_id: str | None = None
    transcript_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[PipelineEvent]] = []
        self.dropped = 0

    def subscribe(self, buffer: int = 10_000) -> MemoryObjectReceiveStream[PipelineEvent]:
        send, receive = anyio.create_memory_object_stream[PipelineEvent](buffer)
        self._subscribers.append(send)
        return receive

    def publish(self, kind: str, run_id: str | None = None, transcript_id: str | None = None, **data: Any) -> None:
        event = PipelineEvent(kind=kind, run_id=run_id, transcript_id=transcript_id, data=data)
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(send)

    def close(self) -> None:
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()
