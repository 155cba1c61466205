"""The Anthropic backend against a loopback server that speaks the documented Messages API.

The server checks each request against the documented shape (headers,
system blocks with cache_control, a forced single tool) and answers with the
documented response, error and SSE shapes, including 429 with retry-after,
529 overloaded, 500 and a malformed tool answer.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import Canned, Recorded, ScriptedServer

from actors.backends import BackendError, Message, ModelRouter
from actors.backends.anthropic_backend import AnthropicBackend
from actors.run_config import AnthropicConfig, RunConfig

pytestmark = pytest.mark.anyio

KEY_ENV = "COACH_TEST_ANTHROPIC_KEY"
VERDICT = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["YES", "NO", "NA"]}, "reasoning": {"type": "string"}},
    "required": ["verdict", "reasoning"],
}
TRANSCRIPT = "user: I keep procrastinating.\nassistant: What happens right before you put things off?\n" * 40


def message(content: list[dict[str, Any]], *, stop_reason: str = "end_turn", read: int = 0, written: int = 0) -> dict:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-1",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 25,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "output_tokens": 9,
        },
    }


def text_message(text: str, **kw: Any) -> Canned:
    return Canned(200, message([{"type": "text", "text": text}], **kw))


def tool_message(tool_input: Any, **kw: Any) -> Canned:
    block = {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "answer", "input": tool_input}
    return Canned(200, message([block], stop_reason="tool_use", **kw))


def api_error(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Canned:
    return Canned(status, {"type": "error", "error": {"type": kind, "message": text}}, headers or {})


def documented_shape(request: Recorded) -> Canned | None:
    """A 400 invalid_request_error for anything that breaks the documented request shape."""
    problems: list[str] = []
    if request.headers.get("x-api-key") != "sk-ant-test":
        return api_error(401, "authentication_error", "invalid x-api-key")
    if request.headers.get("anthropic-version") != "2023-06-01":
        problems.append("anthropic-version header")
    if request.method == "GET":
        return None
    if not request.headers.get("content-type", "").startswith("application/json"):
        problems.append("content-type")
    body = request.body if isinstance(request.body, dict) else {}
    if not isinstance(body.get("model"), str):
        problems.append("model")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        problems.append("max_tokens")
    if not 0 <= body.get("temperature", 0) <= 1:
        problems.append("temperature must be in 0..1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages")
    for turn in messages or []:
        if turn.get("role") not in ("user", "assistant"):
            problems.append(f"role {turn.get('role')!r}")
        content = turn.get("content")
        if not isinstance(content, (str, list)) or (
            isinstance(content, list)
            and not all(b.get("type") == "text" and isinstance(b.get("text"), str) for b in content)
        ):
            problems.append("content blocks")
    for a, b in zip(messages or [], (messages or [])[1:], strict=False):
        if a.get("role") == b.get("role"):
            problems.append("consecutive turns of one role")
    system = body.get("system")
    if system is not None and not (isinstance(system, list) and all(b.get("type") == "text" for b in system)):
        problems.append("system must be text blocks")
    for block in system or []:
        if "cache_control" in block and block["cache_control"] != {"type": "ephemeral"}:
            problems.append("cache_control")
    if "tools" in body:
        names = [t.get("name") for t in body["tools"]]
        if not all(isinstance(t.get("input_schema"), dict) for t in body["tools"]):
            problems.append("tools[].input_schema")
        choice = body.get("tool_choice")
        if choice is not None and not (choice.get("type") == "tool" and choice.get("name") in names):
            problems.append("tool_choice")
    if problems:
        return api_error(400, "invalid_request_error", "; ".join(problems))
    return None


@pytest.fixture
def anthropic(scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, fast_retries) -> ScriptedServer:
    monkeypatch.setenv(KEY_ENV, "sk-ant-test")
    scripted_server.check = documented_shape
    return scripted_server


def router_for(server: ScriptedServer, fast_retries: dict, **settings: Any) -> ModelRouter:
    config = AnthropicConfig(
        model="claude-test-1", base_url=server.url, api_key_env=KEY_ENV, **{**fast_retries, **settings}
    )
    return ModelRouter.from_config(
        RunConfig(backends={"claude": config}, roles={"judge": "claude", "assistant": "claude"})
    )


def judge_messages(question: str) -> list[Message]:
    return [
        Message(role="system", content="You judge coaching transcripts."),
        Message(role="system", content=TRANSCRIPT),
        Message(role="user", content=question),
    ]


async def test_text_answer_request_shape_and_usage(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [text_message("Hello there.", read=1800, written=0)]
    async with router_for(anthropic, fast_retries) as router:
        reply = await router.ask(
            "assistant",
            [Message(role="system", content="Be kind."), Message(role="user", content="hi")],
            max_tokens=64,
            temperature=1.4,
        )
    assert reply.text == "Hello there." and reply.backend == "claude" and reply.model == "claude-test-1"
    assert (
        reply.usage.prompt_tokens == 25 + 1800
        and reply.usage.cached_tokens == 1800
        and reply.usage.completion_tokens == 9
    )
    [request] = anthropic.posts("/v1/messages")
    assert request.body["system"] == [{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}]
    assert request.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert request.body["temperature"] == 1.0  # clamped to the API's range
    assert request.body["max_tokens"] == 64 and "tools" not in request.body


async def test_cache_breakpoints_on_shared_prefix_and_history(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [text_message("ok")]
    history = [
        Message(role="system", content="persona"),
        Message(role="system", content=TRANSCRIPT),
        Message(role="user", content="first"),
        Message(role="assistant", content="reply"),
        Message(role="assistant", content="more"),
        Message(role="user", content="latest"),
    ]
    async with router_for(anthropic, fast_retries) as router:
        await router.ask("assistant", history, max_tokens=16)
    body = anthropic.posts("/v1/messages")[0].body
    assert [("cache_control" in b) for b in body["system"]] == [False, True]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert len(body["messages"][1]["content"]) == 2  # consecutive assistant messages merged into one turn
    assert body["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in b for b in body["messages"][2]["content"])


async def test_structured_answer_uses_one_forced_tool(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [tool_message({"verdict": "YES", "reasoning": "open question"}, read=2000)]
    async with router_for(anthropic, fast_retries) as router:
        reply = await router.ask(
            "judge", judge_messages("Did the coach ask an open question?"), schema=VERDICT, max_tokens=200
        )
    assert reply.data == {"verdict": "YES", "reasoning": "open question"} and reply.structured_error is None
    assert reply.usage.cached_tokens == 2000
    body = anthropic.posts("/v1/messages")[0].body
    assert body["tools"] == [
        {"name": "answer", "description": body["tools"][0]["description"], "input_schema": VERDICT}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


async def test_malformed_tool_answer_is_structured_error_never_a_guess(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [tool_message({"verdict": "PROBABLY"}), tool_message({"verdict": "YES", "reasoning": "x"})]
    async with router_for(anthropic, fast_retries) as router:  # structured_retries defaults to 0
        reply = await router.ask("judge", judge_messages("q"), schema=VERDICT, max_tokens=200)
    assert reply.data is None
    assert (
        "'PROBABLY' is not one of" in reply.structured_error
        and "missing required field 'reasoning'" in reply.structured_error
    )
    assert len(anthropic.posts("/v1/messages")) == 1


async def test_missing_tool_call_is_structured_error(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [text_message("I think the answer is YES.", stop_reason="max_tokens")]
    async with router_for(anthropic, fast_retries) as router:
        reply = await router.ask("judge", judge_messages("q"), schema=VERDICT, max_tokens=20)
    assert (
        reply.data is None
        and "no 'answer' tool call" in reply.structured_error
        and "max_tokens=20" in reply.structured_error
    )


async def test_structured_retries_reask_up_to_the_configured_count(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [tool_message({"verdict": 3}), tool_message({"verdict": "NO", "reasoning": "r"})]
    async with router_for(anthropic, fast_retries, structured_retries=1) as router:
        reply = await router.ask("judge", judge_messages("q"), schema=VERDICT, max_tokens=50)
    assert reply.data == {"verdict": "NO", "reasoning": "r"}
    assert len(anthropic.posts("/v1/messages")) == 2


async def test_429_honours_retry_after(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [api_error(429, "rate_limit_error", "slow down", {"retry-after": "1"}), text_message("fine")]
    async with router_for(anthropic, fast_retries) as router:
        started = time.monotonic()
        reply = await router.ask("assistant", [Message(role="user", content="hi")], max_tokens=8)
        waited = time.monotonic() - started
    assert reply.text == "fine"
    assert len(anthropic.posts("/v1/messages")) == 2
    assert waited >= 0.95  # the header's 1 s, not the configured 10 ms backoff


async def test_529_and_500_are_retried_until_success(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [
        api_error(529, "overloaded_error", "Overloaded"),
        api_error(500, "api_error", "boom"),
        text_message("third time"),
    ]
    async with router_for(anthropic, fast_retries, max_retries=2) as router:
        reply = await router.ask("assistant", [Message(role="user", content="hi")], max_tokens=8)
    assert reply.text == "third time" and len(anthropic.posts("/v1/messages")) == 3


async def test_last_failure_names_backend_role_tries_and_cause(anthropic: ScriptedServer, fast_retries):
    anthropic.default = api_error(529, "overloaded_error", "Overloaded")
    async with router_for(anthropic, fast_retries, max_retries=2) as router:
        with pytest.raises(BackendError) as caught:
            await router.ask("judge", judge_messages("q"), schema=VERDICT, max_tokens=8)
    err = caught.value
    assert len(anthropic.posts("/v1/messages")) == 3
    assert (err.backend, err.role, err.attempts) == ("claude", "judge", 3)
    assert str(err).startswith("backend 'claude' (role judge) failed after 3 tries: HTTP 529")
    assert "overloaded_error: Overloaded" in str(err)


async def test_client_errors_are_not_retried(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [api_error(400, "invalid_request_error", "max_tokens: too large")]
    async with router_for(anthropic, fast_retries, max_retries=3) as router:
        with pytest.raises(BackendError, match="HTTP 400.*invalid_request_error: max_tokens: too large"):
            await router.ask("assistant", [Message(role="user", content="hi")], max_tokens=8)
    assert len(anthropic.posts("/v1/messages")) == 1


async def test_missing_api_key_fails_at_once(anthropic: ScriptedServer, fast_retries, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(KEY_ENV)
    async with router_for(anthropic, fast_retries) as router:
        with pytest.raises(BackendError, match=f"{KEY_ENV} .*is not set"):
            await router.ask("assistant", [Message(role="user", content="hi")], max_tokens=8)
    assert anthropic.requests == []


async def test_streaming_yields_text_deltas(anthropic: ScriptedServer, fast_retries):
    start = message([], stop_reason=None)  # type: ignore[arg-type]
    anthropic.script = [
        Canned(events=[
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 2}}),
            ("message_stop", {"type": "message_stop"}),
        ])
    ]  # fmt: skip
    async with router_for(anthropic, fast_retries) as router:
        pieces = [p async for p in router.stream("assistant", [Message(role="user", content="hi")], max_tokens=8)]
    assert pieces == ["Hello", " there"]
    assert anthropic.posts("/v1/messages")[0].body["stream"] is True


async def test_stream_error_event_raises(anthropic: ScriptedServer, fast_retries):
    anthropic.script = [
        Canned(events=[("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})])
    ]
    async with router_for(anthropic, fast_retries) as router:
        with pytest.raises(BackendError, match="stream failed: overloaded_error: Overloaded") as caught:
            async for _ in router.stream("assistant", [Message(role="user", content="hi")], max_tokens=8):
                pass
    assert caught.value.role == "assistant"


async def test_health_lists_models(anthropic: ScriptedServer, fast_retries):
    anthropic.routes["GET /v1/models"] = Canned(
        200, {"data": [{"type": "model", "id": "claude-test-1", "display_name": "Test"}], "has_more": False}
    )
    backend = AnthropicBackend(
        "claude", AnthropicConfig(model="claude-test-1", base_url=anthropic.url, api_key_env=KEY_ENV)
    )
    try:
        assert "'claude-test-1' listed" in await backend.health()
    finally:
        await backend.aclose()


async def test_unreachable_server_is_retried_then_reported(fast_retries, monkeypatch: pytest.MonkeyPatch):
    from conftest import free_port

    monkeypatch.setenv(KEY_ENV, "sk-ant-test")
    config = AnthropicConfig(
        model="m", base_url=f"http://127.0.0.1:{free_port()}", api_key_env=KEY_ENV, max_retries=1, **fast_retries
    )
    async with ModelRouter.from_config(RunConfig(backends={"claude": config}, roles={"assistant": "claude"})) as router:
        with pytest.raises(BackendError, match=r"failed after 2 tries: cannot reach http://127\.0\.0\.1"):
            await router.ask("assistant", [Message(role="user", content="hi")], max_tokens=8)
