"""What the two HTTP backends share: pooled ``httpx.AsyncClient``s, JSON posts, SSE streams.

Clients are created on first use, inside the event loop that uses them, and
closed by ``aclose``. A backend allowed many concurrent calls spreads them
over several small clients: httpcore's pool scans every connection on each
request, so one pool of 64 connections spends more CPU on bookkeeping than
on the requests (measured in benchmarks/bench_supervisor.py). Every transport failure and non-2xx status leaves here
as a classified ``BackendError`` (see ``http_faults``), so the backends only
deal with their vendor's JSON.

``post_json`` is every model call of a run, so it takes the short way. To a
plain ``http://`` server (a local or LAN model server, where the many
concurrent calls go) it uses one long-lived aiohttp session (``aiohttp_post``),
whose C-parsed, kept-alive calls cost a fraction of httpx's CPU. Over TLS the request is built from
prepared parts and handed straight to the client's transport, skipping the
client's per-request work (merging defaults, cookies, auth and redirect
hooks). With a proxy in the environment the client's own path is kept, since
only the client knows how to route through it.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from multidict import CIMultiDict

from .aiohttp_post import AiohttpPoster
from .base import Backend
from .errors import BackendError
from .http_faults import status_error, transport_error
from .replicas import ReplicaSet
from .sse import ServerEvent, aiter_events
from .urls import join, public
from .windows import default_window

if TYPE_CHECKING:
    from ..run_config import AnthropicConfig, OpenAIConfig

CONNECTIONS_PER_CLIENT = 8


class HttpBackend(Backend):
    def __init__(self, name: str, config: OpenAIConfig | AnthropicConfig) -> None:
        """Both vendors' configs name the same connection settings; a window not given comes from the model name.

        `max_concurrency` is per replica (`replicas`): the backend admits that many calls per base URL.
        """
        self.config = config
        urls = [config.base_url] if isinstance(config.base_url, str) else list(config.base_url)
        super().__init__(
            name,
            model=config.model,
            max_concurrency=config.max_concurrency * len(urls),
            context_window=config.context_window or default_window(self.kind, config.model),
        )
        self.replicas = ReplicaSet(
            urls, rest_s=getattr(config, "replica_rest_s", 30.0), per_replica=config.max_concurrency
        )
        self.base_url = self.replicas.replicas[0].base_url
        self.timeout_s = config.timeout_s
        self.api_key_env = config.api_key_env
        self._clients: list[httpx.AsyncClient] = []
        self._transports: list[httpx.AsyncHTTPTransport | None] = []
        self._in_flight: list[int] = []
        self._parsed: dict[str, httpx.URL] = {}
        self._timeouts = httpx.Timeout(self.timeout_s).as_dict()
        self._post_headers: tuple[dict[str, str], list[tuple[bytes, bytes]]] | None = None
        self._plain: dict[str, bool] = {}
        self._poster: AiohttpPoster | None = None
        self._lean_headers: tuple[tuple[tuple[bytes, bytes], ...], CIMultiDict[str]] | None = None

    def _ensure_clients(self) -> None:
        if not self._clients:
            shards = -(-self.max_concurrency // CONNECTIONS_PER_CLIENT)
            per = -(-self.max_concurrency // shards)
            limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
            # One TLS context for all shards: building one reads the CA bundle (about 20 ms each).
            tls = httpx.create_ssl_context()
            # Without an environment proxy a client builds exactly this transport itself; building it
            # here lets `post_json` hand requests to it directly.
            direct = not environment_proxies()
            for _ in range(shards):
                transport = httpx.AsyncHTTPTransport(verify=tls, limits=limits) if direct else None
                self._clients.append(
                    httpx.AsyncClient(
                        timeout=httpx.Timeout(self.timeout_s), limits=limits, verify=tls, transport=transport
                    )
                )
                self._transports.append(transport)
            self._in_flight = [0] * shards

    def _least_busy(self) -> int:
        self._ensure_clients()
        in_flight = self._in_flight
        return in_flight.index(min(in_flight))

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[httpx.AsyncClient]:
        """The least busy client for the length of one request."""
        i = self._least_busy()
        self._in_flight[i] += 1
        try:
            yield self._clients[i]
        finally:
            self._in_flight[i] -= 1

    def api_key(self, *, required: bool) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key and required:
            raise BackendError(self.name, f"environment variable {self.api_key_env} (the API key) is not set")
        return key or None

    def headers(self) -> dict[str, str]:
        return {}

    def url(self, path: str, base: str | None = None) -> str:
        return join(base or self.base_url, path)

    @property
    def shown_url(self) -> str:
        """The base URL(s) as they may be printed: secrets masked."""
        return ", ".join(public(r.base_url) for r in self.replicas.replicas)

    def _parsed_url(self, url: str) -> httpx.URL:
        """Parsed once per endpoint: httpx parses a string URL on every request."""
        parsed = self._parsed.get(url)
        if parsed is None:
            parsed = self._parsed[url] = httpx.URL(url)
        return parsed

    def _json_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of a JSON post as ``client.post(json=...)`` sends them: the client's defaults, then
        the backend's; merged once, again only when the backend's change (a key set meanwhile)."""
        own = self.headers()
        cached = self._post_headers
        if cached is None or cached[0] != own:
            merged = httpx.Headers(self._clients[0].headers)
            merged.update(own)
            if "content-type" not in merged:
                merged["content-type"] = "application/json"
            cached = self._post_headers = (own, merged.raw)
        return cached[1]

    async def _post(self, i: int, url: str, payload: dict[str, Any]) -> httpx.Response:
        """POST `payload` as JSON on shard `i`; the response comes back read and closed."""
        transport = self._transports[i]
        if transport is None:  # an environment proxy: the client routes
            return await self._clients[i].post(self._parsed_url(url), json=payload, headers=self.headers())
        request = httpx.Request(
            "POST",
            self._parsed_url(url),
            headers=self._json_headers(),
            content=json_body(payload),
            extensions={"timeout": self._timeouts},
        )
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _plain_for(self, base_url: str) -> AiohttpPoster | None:
        """The aiohttp session for a replica, when it may serve: plain http, no credentials in the URL, no proxy."""
        lean = self._plain.get(base_url)
        if lean is None:
            parsed = httpx.URL(base_url)
            lean = self._plain[base_url] = parsed.scheme == "http" and not parsed.userinfo and not environment_proxies()
        if not lean:
            return None
        if self._poster is None:
            self._poster = AiohttpPoster(limit=self.max_concurrency, timeout_s=self.timeout_s)
        return self._poster

    def _aiohttp_headers(self) -> CIMultiDict[str]:
        """The headers httpx would send (see ``_json_headers``) but asking for an uncompressed answer; host and
        content-length are aiohttp's. Built again only when the backend's headers change."""
        self._ensure_clients()
        raw = tuple(self._json_headers())
        cached = self._lean_headers
        if cached is None or cached[0] != raw:
            headers: CIMultiDict[str] = CIMultiDict()
            for key, value in raw:
                if any(c in key or c in value for c in (b"\r", b"\n", b"\x00")):
                    raise httpx.LocalProtocolError(f"illegal character in header {key.decode('latin-1')!r}")
                if key.lower() not in (b"host", b"content-length", b"transfer-encoding", b"accept-encoding"):
                    headers.add(key.decode("latin-1"), value.decode("latin-1"))
            headers["accept-encoding"] = "identity"
            cached = self._lean_headers = (raw, headers)
        return cached[1]

    async def post_json(self, path: str, payload: dict[str, Any], *, affinity: str | None = None) -> dict[str, Any]:
        replica = self.replicas.pick(affinity)
        self.replicas.begin(replica)
        broken = False  # a transport failure or a 5xx rests the replica; a 4xx is the request's fault
        url = self.url(path, replica.base_url)
        response: httpx.Response | None = None
        try:
            plain = self._plain_for(replica.base_url)
            if plain is not None:
                answer = await plain.post(url, self._aiohttp_headers(), json_body(payload))
                status, content = answer.status, answer.body
                if status >= 400:
                    response = answer.to_httpx(httpx.Request("POST", self._parsed_url(url)))
            else:
                i = self._least_busy()
                self._in_flight[i] += 1
                try:
                    response = await self._post(i, url, payload)
                finally:
                    self._in_flight[i] -= 1
                status, content = response.status_code, response.content
            broken = status >= 500
        except httpx.HTTPError as err:
            broken = True
            raise transport_error(self.name, err, public(url)) from err
        finally:
            self.replicas.end(replica, failed=broken)
        if response is not None and response.is_error:
            raise status_error(self.name, response)
        try:
            body = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BackendError(self.name, f"{url} answered with invalid JSON", retryable=True) from err
        if not isinstance(body, dict):
            raise BackendError(self.name, f"{url} answered with JSON that is not an object", retryable=True)
        return body

    async def get_json(self, path: str, base: str | None = None) -> dict[str, Any]:
        url = self.url(path, base)
        try:
            async with self._lease() as client:
                response = await client.get(url, headers=self.headers())
        except httpx.HTTPError as err:
            raise transport_error(self.name, err, public(url)) from err
        if response.is_error:
            raise status_error(self.name, response)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BackendError(self.name, f"{public(url)} answered with invalid JSON") from err

    @asynccontextmanager
    async def open_events(
        self, path: str, payload: dict[str, Any], *, affinity: str | None = None
    ) -> AsyncIterator[AsyncIterator[ServerEvent]]:
        """POST with streaming on; yields the server's events once the status is known to be good."""
        replica = self.replicas.pick(affinity)
        self.replicas.begin(replica)
        broken = False
        url = self.url(path, replica.base_url)
        try:
            async with (
                self._lease() as client,
                client.stream("POST", url, json=payload, headers=self.headers()) as response,
            ):
                if response.is_error:
                    broken = response.status_code >= 500
                    await response.aread()
                    raise status_error(self.name, response)
                yield aiter_events(response)
        except httpx.HTTPError as err:
            broken = True
            raise transport_error(self.name, err, public(url)) from err
        finally:
            self.replicas.end(replica, failed=broken)

    async def health_of_replicas(self, check: Any) -> str:
        """``check(base_url)`` for every replica; one line each when there are several."""
        if len(self.replicas) == 1:
            return await check(self.base_url)
        lines = []
        for replica in self.replicas.replicas:
            try:
                lines.append(await check(replica.base_url))
            except BackendError as err:
                lines.append(f"{public(replica.base_url)}: {err.cause}")
        return "; ".join(lines)

    async def aclose(self) -> None:
        clients, self._clients, self._transports, self._in_flight = self._clients, [], [], []
        poster, self._poster = self._poster, None
        self._plain = {}
        self._post_headers = self._lean_headers = None
        for client in clients:
            await client.aclose()
        if poster is not None:
            await poster.aclose()


def environment_proxies() -> bool:
    """Whether the environment names an HTTP proxy, as httpx reads it (``urllib``'s ``getproxies``)."""
    found = urllib.request.getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


def json_body(payload: Any) -> bytes:
    """JSON exactly as httpx encodes a ``json=`` body: compact, UTF-8, no NaN."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def token_count(backend: str, field: str, value: Any) -> int:
    """A token count from a vendor's JSON: absent is 0; anything but a whole, non-negative number is a
    malformed answer (a `BackendError`, like every other way a server can answer wrongly)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BackendError(backend, f"malformed answer: {field} is {value!r}, not a token count", retryable=True)
    return value


def decode_event(backend: str, event: ServerEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.data)
    except json.JSONDecodeError as err:
        raise BackendError(backend, f"malformed stream event: {event.data[:100]!r}") from err
    if not isinstance(value, dict):
        raise BackendError(backend, f"malformed stream event: {event.data[:100]!r}")
    return value
