"""What the two HTTP backends share: pooled ``httpx.AsyncClient``s, JSON posts, SSE streams.

Clients are created on first use, inside the event loop that uses them, and
closed by ``aclose``. A backend allowed many concurrent calls spreads them
over several small clients: httpcore's pool scans every connection on each
request, so one pool of 64 connections spends more CPU on bookkeeping than
on the requests (measured in benchmarks/bench_supervisor.py). Every transport failure and non-2xx status leaves here
as a classified ``BackendError`` (see ``http_faults``), so the backends only
deal with their vendor's JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

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
        """Both vendors' configs name the same connection settings; a window not given comes from the model name."""
        self.config = config
        super().__init__(
            name,
            model=config.model,
            max_concurrency=config.max_concurrency,
            context_window=config.context_window or default_window(self.kind, config.model),
        )
        urls = [config.base_url] if isinstance(config.base_url, str) else list(config.base_url)
        self.replicas = ReplicaSet(urls, rest_s=getattr(config, "replica_rest_s", 30.0))
        self.base_url = self.replicas.replicas[0].base_url
        self.timeout_s = config.timeout_s
        self.api_key_env = config.api_key_env
        self._clients: list[httpx.AsyncClient] = []
        self._in_flight: list[int] = []
        self._parsed: dict[str, httpx.URL] = {}

    def _ensure_clients(self) -> None:
        if not self._clients:
            shards = -(-self.max_concurrency // CONNECTIONS_PER_CLIENT)
            per = -(-self.max_concurrency // shards)
            limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
            # One TLS context for all shards: building one reads the CA bundle (about 20 ms each).
            tls = httpx.create_ssl_context()
            self._clients = [
                httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits, verify=tls)
                for _ in range(shards)
            ]
            self._in_flight = [0] * shards

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[httpx.AsyncClient]:
        """The least busy client for the length of one request."""
        self._ensure_clients()
        i = min(range(len(self._clients)), key=self._in_flight.__getitem__)
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

    async def post_json(self, path: str, payload: dict[str, Any], *, affinity: str | None = None) -> dict[str, Any]:
        replica = self.replicas.pick(affinity)
        self.replicas.begin(replica)
        broken = False  # a transport failure or a 5xx rests the replica; a 4xx is the request's fault
        url = self.url(path, replica.base_url)
        try:
            async with self._lease() as client:
                response = await client.post(self._parsed_url(url), json=payload, headers=self.headers())
            broken = response.status_code >= 500
        except httpx.HTTPError as err:
            broken = True
            raise transport_error(self.name, err, public(url)) from err
        finally:
            self.replicas.end(replica, failed=broken)
        if response.is_error:
            raise status_error(self.name, response)
        try:
            body = response.json()
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
        clients, self._clients, self._in_flight = self._clients, [], []
        for client in clients:
            await client.aclose()


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
