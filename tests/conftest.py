"""Shared fixtures: the loopback-only network guard, the bundled model, and loopback servers.

Privacy guard. Every test in the suite runs with ``socket.connect`` and
``getaddrinfo`` refusing anything that is not loopback (127.0.0.0/8, ::1,
``localhost``) or a Unix socket. A test that reached the internet would fail
with ``NonLoopbackConnection`` instead of silently passing on a machine that
happens to be online; ``test_privacy.py`` checks that the guard really bites.

Servers. ``llama_server`` is llama-cpp-python's own OpenAI-compatible server
on the bundled SmolLM2, one per session. ``scripted_server`` is a small
threaded HTTP server that records each request and answers from a script,
for the vendor shapes and failure modes a real local server cannot produce
(Anthropic's API, 429 with Retry-After, 529, malformed tool answers).
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning, for the whole session (models.calm_cpu_threads does
# the same for training). Both torch and the bundled llama.cpp (built with OpenMP) read this once,
# when they load, so it is set here, before any test module imports either; set in a test module it
# came too late whenever an earlier module had loaded them. On a loaded two-core machine spinning
# threads starve the one computing: SmolLM2 generated 10 tokens/s with them and 30-50 without.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# `make test` runs two workers on two cores: each keeps to one thread (torch, and llama.cpp through
# COACH_LLAMA_THREADS, inherited by the `coach` processes tests start), or their threads wait on one
# another after every operation (see model_cache.threads_from_environment).
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("COACH_LLAMA_THREADS", "1")

import ipaddress
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

# --------------------------------------------------------------------------------------------
# anyio


# --------------------------------------------------------------------------------------------
# order: the longest files first

LONGEST_FIRST = (
    "test_pack_end_to_end.py",
    "test_pack_eval_compare.py",
    "test_kill_resume.py",
    "test_train_e2e.py",
    "test_eval_rerun.py",
    "test_tui_smoke.py",
)
"""Test files by how long they take, longest first (see the durations `make test` prints).

`make test` runs two workers that each take a whole file at a time (`--dist loadfile`), in
collection order. Started last, a file of several minutes would leave one worker idle while
the other finishes it; started first, the short files fill the other worker meanwhile. The
other real-model files (marked slow) come next, then the rest, each group in its usual order.
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(name))
        return (1, 0) if item.get_closest_marker("slow") else (2, 0)

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(scope="session")
def pack():
    """The bundled therapy pack, loaded once."""
    from actors.pack.loader import load_pack

    return load_pack()


@pytest.fixture
def store(tmp_path: Path):
    """A fresh workspace store."""
    from state.store import Store

    return Store.for_workspace(tmp_path / "ws")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------------------------
# loopback-only network guard


class NonLoopbackConnection(OSError):
    """Raised by the test guard when code tries to reach anything but this machine."""


def _is_loopback_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """Patches the socket module so only loopback and Unix sockets connect; records refusals."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._originals: dict[str, Any] = {}

    def _check_address(self, sock: socket.socket, address: Any) -> None:
        if sock.family == getattr(socket, "AF_UNIX", object()):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback_host(host):
            self.refused.append(str(address))
            raise NonLoopbackConnection(f"test guard: refused a connection to non-loopback {address!r}")

    def install(self) -> None:
        guard = self
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        original_getaddrinfo = socket.getaddrinfo
        self._originals = {
            "connect": original_connect,
            "connect_ex": original_connect_ex,
            "getaddrinfo": original_getaddrinfo,
        }

        def connect(sock: socket.socket, address: Any) -> None:
            guard._check_address(sock, address)
            return original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            guard._check_address(sock, address)
            return original_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_loopback_host(host):
                guard.refused.append(str(host))
                raise NonLoopbackConnection(f"test guard: refused to resolve non-loopback host {host!r}")
            return original_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]

    def uninstall(self) -> None:
        socket.socket.connect = self._originals["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._originals["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = self._originals["getaddrinfo"]  # type: ignore[assignment]


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[LoopbackGuard]:
    """Applied to the whole test run: nothing may connect beyond loopback."""
    guard = LoopbackGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()


# --------------------------------------------------------------------------------------------
# the bundled model


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from actors.backends.bundled import bundled_path

    return bundled_path("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def cold_models() -> Callable[[], None]:
    """Call it to drop every loaded model, so what follows starts as a new `coach` process does.

    Loaded models are shared by the whole session (model_cache), and a prompt served partly
    from a context's cache is evaluated in other batches, which llama.cpp rounds differently:
    a test that needs the exact sampled text of a run calls this first. A call another test
    left running (a stopped run's last token) is waited for, not freed under it.
    """
    from actors.backends import model_cache

    def drop() -> None:
        deadline = time.monotonic() + 60
        while any(slot.busy for pool in list(model_cache._pools.values()) for slot in pool.slots):
            if time.monotonic() > deadline:
                pytest.fail("a model call left running by an earlier test did not finish within 60 s")
            time.sleep(0.05)
        model_cache.release_all()

    return drop


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on loopback; yields its base URL (…/v1)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_path), "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within 120s:\n{log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------------------------
# a scripted loopback HTTP server


@dataclass
class Canned:
    """One scripted answer: a JSON body (or raw text), or a list of SSE events, after an optional delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, Any]] | None = None
    delay_s: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedServer:
    """A threaded HTTP server on 127.0.0.1 that answers requests from a script.

    ``script`` is consumed in order; when it runs out, ``default`` answers.
    ``check`` may inspect each request and return a ``Canned`` error (e.g. a
    400 for a request that breaks the documented shape) or None. ``in_flight``
    and ``max_in_flight`` show how many requests were being served at once.
    """

    def __init__(self) -> None:
        self.script: list[Canned] = []
        self.default: Canned | Callable[[Recorded], Canned] = Canned(
            404, {"error": {"type": "not_found_error", "message": "no script"}}
        )
        self.routes: dict[str, Canned | Callable[[Recorded], Canned]] = {}
        self.check: Callable[[Recorded], Canned | None] | None = None
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                recorded = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(recorded)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    canned = server._answer_for(recorded)
                    if canned.delay_s:
                        time.sleep(canned.delay_s)
                    self._send(canned)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a timeout under test): nobody is left to answer
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, canned: Canned) -> None:
                if canned.events is not None:
                    payload = "".join(
                        f"event: {name}\ndata: {json.dumps(data) if not isinstance(data, str) else data}\n\n"
                        for name, data in canned.events
                    ).encode()
                    content_type = "text/event-stream"
                elif isinstance(canned.body, (dict, list)):
                    payload, content_type = json.dumps(canned.body).encode(), "application/json"
                else:
                    payload, content_type = str(canned.body or "").encode(), "text/plain"
                self.send_response(canned.status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                for key, value in canned.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _answer_for(self, recorded: Recorded) -> Canned:
        if self.check is not None and (problem := self.check(recorded)) is not None:
            return problem
        route = self.routes.get(f"{recorded.method} {recorded.path}")
        with self._lock:
            if route is None and self.script:
                return self.script.pop(0)
        answer = route if route is not None else self.default
        return answer(recorded) if callable(answer) else answer

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_retries() -> dict[str, float]:
    """Backoff settings that keep fault tests quick while still exercising the waits."""
    return {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No run config from the environment leaks into a test."""
    monkeypatch.delenv("COACH_RUN_CONFIG", raising=False)
    return monkeypatch
