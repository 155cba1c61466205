"""JSON POSTs to plain-http model servers through aiohttp, failing the way httpx fails.

Why it exists: through httpx and httpcore one model call cost about a
millisecond and a half of the supervisor's CPU (h11's state machine in pure
Python, a cancel scope and a timer per read and write, pool bookkeeping), and
with 32 transcripts in flight that CPU, not the model server, set the pace
(benchmarks/bench_supervisor.py). aiohttp parses HTTP in C and keeps one
connection pool per session, so a call costs a fraction of that.

Its scope is deliberately small. ``HttpBackend`` uses it only for ``http://``
servers named without credentials and with no proxy in the environment (a
local or LAN model server, the many-calls case); TLS, proxies, streaming and
GETs stay with httpx. aiohttp's failures are raised again as httpx's own
exception types, so ``http_faults`` classifies both paths the same way.

The timeout bounds the whole call (connect, send and the wait for the full
answer), as a model server sends nothing until its answer is ready.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        """The answer as an httpx response, for the error path that reads one (``status_error``). The body
        is already decoded and de-chunked, so the headers that would have httpx do it again are left out."""
        framing = (b"content-encoding", b"transfer-encoding", b"content-length")
        headers = [(k, v) for k, v in self.headers if k.lower() not in framing]
        return httpx.Response(self.status, headers=headers, content=self.body, request=request)


class AiohttpPoster:
    """One long-lived ``aiohttp.ClientSession`` for a backend: at most `limit` connections, kept alive.

    The session is made on first use, inside the running event loop (aiohttp binds it to that loop),
    and made again should a later call run in another loop.
    """

    def __init__(self, *, limit: int, timeout_s: float | None) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, URL] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop or session.closed:
            if session is not None:
                _abandon(session)
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, use_dns_cache=True)
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                # The connect phase gets the same bound, so a timeout there reads as httpx's ConnectTimeout.
                timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=self.timeout_s),
                auto_decompress=True,  # identity is asked for; a server that compresses anyway is decoded
                trust_env=False,  # no proxy: a proxy in the environment sends the call to httpx instead
            )
            self._loop = loop
        return session

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 64:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    async def post(self, url: str, headers: CIMultiDict[str], body: bytes) -> Answer:
        """POST `body` with `headers` (content-length and host are aiohttp's) and read the whole answer."""
        session = self._session_now()
        try:
            async with session.post(self._url(url), data=body, headers=headers, allow_redirects=False) as response:
                content = await response.read()
                return Answer(response.status, response.raw_headers, content)
        except aiohttp.ConnectionTimeoutError as err:
            raise httpx.ConnectTimeout(f"no connection within {self.timeout_s}s") from err
        except TimeoutError as err:  # the total bound (asyncio's), or aiohttp's socket-read timeout
            raise httpx.ReadTimeout(f"no answer within {self.timeout_s}s") from err
        except aiohttp.ClientConnectorError as err:
            raise httpx.ConnectError(str(err) or type(err).__name__) from err
        except aiohttp.ServerDisconnectedError as err:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from err
        except aiohttp.ClientPayloadError as err:
            raise httpx.RemoteProtocolError(f"Server disconnected in the middle of its answer: {err}") from err
        except aiohttp.ClientResponseError as err:  # an answer that is not HTTP/1.x
            raise httpx.RemoteProtocolError(str(err) or type(err).__name__) from err
        except aiohttp.ClientOSError as err:
            raise httpx.ReadError(str(err) or type(err).__name__) from err
        except aiohttp.ClientError as err:
            raise httpx.TransportError(str(err) or type(err).__name__) from err

    async def aclose(self) -> None:
        session, self._session = self._session, None
        loop, self._loop = self._loop, None
        if session is None or session.closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            await session.close()
        else:
            _abandon(session)


def _abandon(session: aiohttp.ClientSession) -> None:
    """Close a session whose event loop is not the running one, without awaiting that loop."""
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()  # the synchronous part of ``close``; the loop that would await the rest is not running
