"""Server-sent events, the streaming format both OpenAI-compatible servers and Anthropic use.

A tiny reader (event name + joined data lines per blank-line-separated block)
over ``httpx.Response.aiter_lines``; it follows the WHATWG rules the two APIs
rely on and nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: str


async def aiter_events(response: httpx.Response) -> AsyncIterator[ServerEvent]:
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield ServerEvent(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # a comment / keep-alive
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield ServerEvent(event, "\n".join(data))
