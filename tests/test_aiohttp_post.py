"""The aiohttp session behind every model call to a plain-http server (actors/backends/aiohttp_post.py).

A loopback server written at the byte level answers what each test scripts,
framing included, and records what arrived and on which connection.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import anyio
import httpx
import pytest
from anyio.abc import SocketAttribute, SocketStream

from actors.backends import BackendError, Message, ModelRouter
from actors.backends.aiohttp_post import AiohttpPoster
from actors.run_config import OpenAIConfig, RunConfig

pytestmark = pytest.mark.anyio

KEY_ENV = "COACH_TEST_PLAIN_KEY"


def completion(text: str) -> bytes:
    return json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2},
        }
    ).encode()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "content-type: application/json", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Act:
    data: bytes = b""
    close: bool = False
    delay: float = 0.0


@dataclass
class Arrived:
    connection: int
    head: str
    body: bytes

    def header(self, name: str) -> str | None:
        found = re.search(rf"^{name}: *(.*)$", self.head, re.I | re.M)
        return found.group(1).strip() if found else None


@asynccontextmanager
async def raw_server(script: Callable[[int, Arrived], Act]) -> AsyncIterator[tuple[int, list[Arrived]]]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    seen: list[Arrived] = []
    numbers = itertools.count()

    async def serve(stream: SocketStream) -> None:
        connection = next(numbers)
        buffer = b""
        async with stream:
            while True:
                try:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
                    while len(buffer) < length:
                        buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                arrived = Arrived(connection, head.decode("latin-1"), buffer[:length])
                buffer = buffer[length:]
                seen.append(arrived)
                act = script(len(seen), arrived)
                await anyio.sleep(act.delay)
                if act.data:
                    await stream.send(act.data)
                if act.close:
                    return

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield port, seen
        tg.cancel_scope.cancel()


def router_at(port: int, **settings) -> ModelRouter:
    config = OpenAIConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, **settings)
    return ModelRouter.from_config(RunConfig(backends={"srv": config}, roles={"assistant": "srv"}))


def causes(err: BaseException) -> list[type]:
    found = []
    while err.__cause__ is not None:
        err = err.__cause__
        found.append(type(err))
    return found


async def ask(router: ModelRouter, text: str = "hello") -> str:
    return (await router.ask("assistant", [Message(role="user", content=text)], max_tokens=5)).text


async def test_calls_share_one_connection_and_send_what_httpx_sends(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "sk-plain")
    async with raw_server(lambda n, _: Act(ok(completion(f"answer {n}")))) as (port, seen):
        async with router_at(port, api_key_env=KEY_ENV) as router:
            assert [await ask(router, "héllo") for _ in range(3)] == ["answer 1", "answer 2", "answer 3"]
            assert isinstance(router.backends["srv"]._plain_for(f"http://127.0.0.1:{port}/v1"), AiohttpPoster)
        async with httpx.AsyncClient() as client:  # the same post the way httpx's client sends it
            await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json=json.loads(seen[0].body),
                headers={"authorization": "Bearer sk-plain"},
            )
    lean, reference = seen[0], seen[3]
    assert {a.connection for a in seen[:3]} == {0}  # kept alive
    assert lean.head.splitlines()[0] == "POST /v1/chat/completions HTTP/1.1"
    assert lean.body == reference.body  # byte for byte the JSON httpx writes
    assert json.loads(lean.body)["messages"] == [{"role": "user", "content": "héllo"}]
    for name in ("host", "content-type", "content-length", "authorization", "accept", "user-agent", "connection"):
        assert lean.header(name) == reference.header(name), name
    assert lean.header("accept-encoding") == "identity"


async def test_chunked_interim_and_close_framed_answers_are_read():
    body = completion("chunked")
    chunked = (
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\nx: y\r\n\r\n"
    )

    def script(n: int, _: Arrived) -> Act:
        if n == 1:
            interim = b"HTTP/1.1 100 Continue\r\n\r\n"
            return Act(interim + b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked)
        if n == 2:
            return Act(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + completion("until the close"), close=True)
        return Act(ok(completion("fresh")))

    async with raw_server(script) as (port, seen), router_at(port) as router:
        assert [await ask(router) for _ in range(3)] == ["chunked", "until the close", "fresh"]
    assert [a.connection for a in seen] == [0, 0, 1]


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    # The server closes after each answer without saying so, as a keep-alive timeout does.
    script = lambda n, _: Act(ok(completion(f"n{n}")), close=True)  # noqa: E731
    async with raw_server(script) as (port, seen), router_at(port) as router:
        first = await ask(router)
        await anyio.sleep(0.05)  # the close reaches this side
        second = await ask(router)
    assert (first, second) == ("n1", "n2")
    assert [a.connection for a in seen] == [0, 1]


async def test_failures_are_classified_as_httpx_failures_were():
    def script(n: int, _: Arrived) -> Act:
        if n == 1:
            return Act(delay=5)  # never answers in time
        if n == 2:
            error = json.dumps({"error": {"type": "overloaded", "message": "busy"}}).encode()
            head = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nretry-after: 2\r\n\r\n"
            return Act(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(error), error))
        if n == 3:
            return Act(ok(completion("cut short"))[:-8], close=True)  # the body stops mid-way
        if n == 4:
            return Act(close=True)  # hangs up without a word
        return Act(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", close=True)  # not an HTTP answer

    async with raw_server(script) as (port, _), router_at(port, timeout_s=0.3) as router:
        with pytest.raises(BackendError) as timed_out:
            await ask(router)
        with pytest.raises(BackendError) as unavailable:
            await ask(router)
        with pytest.raises(BackendError) as cut:
            await ask(router)
        with pytest.raises(BackendError) as hung_up:
            await ask(router)
        with pytest.raises(BackendError) as garbled:
            await ask(router)
    assert timed_out.value.retryable and "timed out" in str(timed_out.value)
    assert unavailable.value.retryable and "HTTP 503" in str(unavailable.value)
    assert "overloaded: busy" in str(unavailable.value) and unavailable.value.retry_after == 2
    assert cut.value.retryable and "cannot reach" in str(cut.value)
    assert hung_up.value.retryable and "Server disconnected without sending a response" in str(hung_up.value)
    assert garbled.value.retryable and "cannot reach" in str(garbled.value)
    for failure, kind in ((timed_out, httpx.ReadTimeout), (cut, httpx.RemoteProtocolError)):
        assert kind in causes(failure.value)  # aiohttp's failure, raised again as httpx's

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    closed_port = listener.extra(SocketAttribute.local_port)
    await listener.aclose()
    async with router_at(closed_port) as router:
        with pytest.raises(BackendError) as refused:
            await ask(router)
    assert refused.value.retryable and "cannot reach" in str(refused.value)


async def test_tls_a_proxy_or_credentials_in_the_url_keep_httpx(monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with router_at(9) as router:
        backend = router.backends["srv"]
        assert backend._plain_for("http://127.0.0.1:9/v1") is not None
        assert backend._plain_for("https://api.example.com/v1") is None
        assert backend._plain_for("http://user:secret@127.0.0.1:9/v1") is None
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
        assert backend._plain_for("http://10.0.0.5:8000/v1") is None


async def test_one_session_per_backend_made_in_the_loop_and_closed_with_the_backend():
    async with raw_server(lambda n, _: Act(ok(completion(f"n{n}")))) as (port, seen):
        router = router_at(port, max_concurrency=3)
        async with router:
            backend = router.backends["srv"]
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(ask, router)
            poster = backend._plain_for(f"http://127.0.0.1:{port}/v1")
            session = poster._session
            assert session is not None and session.connector.limit == 3
            assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.closed and backend._poster is None
    assert len({a.connection for a in seen}) <= 3  # never more connections than calls allowed at once
