"""Privacy: with the default config, backend work opens no socket except loopback.

The whole test run sits behind ``conftest.loopback_only``, which refuses any
non-loopback connection or name lookup. These tests show that the guard
bites, that a full round of embedded-backend work does not even *try* to
leave the machine, and that ``coach ask`` answers inside a network namespace
with no network at all (``unshare -n``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import httpx
import pytest
from conftest import LoopbackGuard, NonLoopbackConnection

from actors.backends import Message, ModelRouter
from actors.run_config import RunConfig

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["YES", "NO"]}},
    "required": ["verdict"],
}


def test_guard_refuses_everything_but_loopback(loopback_only: LoopbackGuard):
    before = len(loopback_only.refused)
    with socket.socket() as sock, pytest.raises(NonLoopbackConnection):
        sock.connect(("192.0.2.10", 443))  # TEST-NET-1: never routable
    with pytest.raises(NonLoopbackConnection):
        socket.getaddrinfo("api.anthropic.com", 443)
    with pytest.raises(httpx.TransportError):
        httpx.get("https://api.openai.com/v1/models", timeout=2)
    assert len(loopback_only.refused) - before == 3
    with socket.socket() as listener:  # loopback is allowed
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname(), timeout=2):
            pass


@pytest.mark.slow
@pytest.mark.anyio
async def test_default_backend_work_never_tries_the_network(loopback_only: LoopbackGuard, clean_env):
    before = list(loopback_only.refused)
    async with ModelRouter.from_config(RunConfig()) as router:
        health = await router.health()
        for role in ("user_sim", "assistant", "persona", "fixup", "eval_target"):
            await router.ask(role, [Message(role="user", content="Say hi.")], max_tokens=4, temperature=0)
        reply = await router.ask(
            "judge", [Message(role="user", content="YES or NO?")], schema=SCHEMA, max_tokens=12, temperature=0
        )
        pieces = [p async for p in router.stream("assistant", [Message(role="user", content="Hi")], max_tokens=4)]
    assert isinstance(health["embedded"], str) and reply.data is not None and pieces
    assert loopback_only.refused == before  # nothing even attempted to leave the machine


def _unshare_works() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here: {probe.stderr.strip()}"
    return None


@pytest.mark.slow
def test_coach_ask_answers_with_no_network_at_all(tmp_path):
    reason = _unshare_works()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "COACH_RUN_CONFIG"}
    env["HOME"] = str(tmp_path)  # nothing from the user's home (no caches, no configs)
    code = "import sys; from coach_tui.cli import main; sys.exit(main())"
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", code, "ask", "--max-tokens", "8", "--seed", "1", "Say hello."],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "backend embedded · model smollm2-135m-instruct" in done.stdout
    network = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"],
        capture_output=True,
        text=True,
    )
    assert network.returncode != 0 and "unreachable" in network.stderr.lower()  # the namespace really is offline
