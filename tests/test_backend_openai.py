"""The OpenAI-compatible backend: against llama-cpp-python's real server, and a scripted one for faults."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from conftest import Canned, ScriptedServer

from actors.backends import BackendError, Message, ModelRouter
from actors.backends.openai_backend import OpenAIBackend
from actors.run_config import OpenAIConfig, RunConfig

pytestmark = pytest.mark.anyio

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["YES", "NO", "NA"]},
        "reasoning": {"type": "string", "maxLength": 80},
    },
    "required": ["verdict", "reasoning"],
}


def completion(text: str, *, cached: int | None = None, finish: str = "stop") -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 120, "completion_tokens": 6, "total_tokens": 126}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": usage,
    }


def router_for(config: OpenAIConfig, role: str = "assistant") -> ModelRouter:
    return ModelRouter.from_config(RunConfig(backends={"gpt": config}, roles={role: "gpt"}))


# -- the real server -----------------------------------------------------------------------


@pytest.mark.slow
async def test_real_server_answers(llama_server: str):
    config = OpenAIConfig(model="smollm2", base_url=llama_server, context_window=2048)
    async with router_for(config) as router:
        reply = await router.ask(
            "assistant", [Message(role="user", content="Name one colour.")], max_tokens=12, temperature=0, seed=3
        )
        health = await router.backends_for("assistant")[0].health()
    assert reply.text.strip() and reply.backend == "gpt"
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 12
    assert health.startswith(llama_server)


@pytest.mark.slow
async def test_real_server_structured_answer_is_schema_valid(llama_server: str):
    config = OpenAIConfig(model="smollm2", base_url=llama_server, structured_output="json_object", context_window=2048)
    messages = [
        Message(role="system", content="You judge a coaching reply. Answer in JSON."),
        Message(role="user", content="Coach said: 'What would help most right now?' Is that an open question?"),
    ]
    async with router_for(config, "judge") as router:
        reply = await router.ask("judge", messages, schema=VERDICT, max_tokens=96, temperature=0, seed=1)
    assert reply.structured_error is None, reply.text
    assert reply.data["verdict"] in ("YES", "NO", "NA")


@pytest.mark.slow
async def test_real_server_streams(llama_server: str):
    config = OpenAIConfig(model="smollm2", base_url=llama_server, context_window=2048)
    async with router_for(config) as router:
        pieces = [
            p
            async for p in router.stream(
                "assistant", [Message(role="user", content="Count: one, two,")], max_tokens=8, temperature=0
            )
        ]
    assert len(pieces) >= 2 and "".join(pieces).strip()


# -- request shape and faults (scripted server) --------------------------------------------


async def test_json_schema_request_and_cached_usage(scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COACH_TEST_OPENAI_KEY", "sk-test")
    scripted_server.script = [Canned(200, completion('{"verdict": "NO", "reasoning": "closed"}', cached=100))]
    config = OpenAIConfig(model="gpt-test", base_url=scripted_server.url + "/v1", api_key_env="COACH_TEST_OPENAI_KEY")
    async with router_for(config, "judge") as router:
        reply = await router.ask(
            "judge", [Message(role="user", content="q")], schema=VERDICT, max_tokens=40, temperature=0, seed=7
        )
    assert reply.data == {"verdict": "NO", "reasoning": "closed"}
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens, reply.usage.completion_tokens) == (120, 100, 6)
    assert reply.model == "served-model"
    [request] = scripted_server.posts("/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": VERDICT, "strict": False},
    }
    assert request.body["seed"] == 7 and request.body["max_tokens"] == 40


async def test_unparsable_answer_is_structured_error(scripted_server: ScriptedServer):
    scripted_server.script = [Canned(200, completion('{"verdict": "YES", "reasoning": "the co', finish="length"))]
    config = OpenAIConfig(model="m", base_url=scripted_server.url)
    async with router_for(config, "judge") as router:
        reply = await router.ask("judge", [Message(role="user", content="q")], schema=VERDICT, max_tokens=10)
    assert (
        reply.data is None and "not valid JSON" in reply.structured_error and "max_tokens=10" in reply.structured_error
    )


async def test_5xx_and_429_retried_then_clean_error(scripted_server: ScriptedServer, fast_retries):
    scripted_server.script = [
        Canned(503, {"error": {"message": "loading model", "type": "unavailable"}}),
        Canned(429, {"error": {"message": "rate limited", "type": "rate_limit"}}),
    ]
    scripted_server.default = Canned(502, "bad gateway")
    config = OpenAIConfig(model="m", base_url=scripted_server.url, max_retries=3, **fast_retries)
    async with router_for(config, "fixup") as router:
        with pytest.raises(BackendError) as caught:
            await router.ask("fixup", [Message(role="user", content="q")], max_tokens=8)
    assert len(scripted_server.posts("/chat/completions")) == 4
    assert str(caught.value) == (
        f"backend 'gpt' (role fixup) failed after 4 tries: HTTP 502 from {scripted_server.url}/chat/completions: bad gateway"
    )


async def test_404_is_not_retried(scripted_server: ScriptedServer, fast_retries):
    scripted_server.default = Canned(
        404, {"error": {"message": "model 'm' not found", "type": "invalid_request_error"}}
    )
    config = OpenAIConfig(model="m", base_url=scripted_server.url, max_retries=3, **fast_retries)
    async with router_for(config) as router:
        with pytest.raises(BackendError, match="HTTP 404.*model 'm' not found"):
            await router.ask("assistant", [Message(role="user", content="q")], max_tokens=8)
    assert len(scripted_server.requests) == 1


async def test_timeout_is_retried(scripted_server: ScriptedServer, fast_retries):
    scripted_server.script = [Canned(200, completion("late"), delay_s=1.0), Canned(200, completion("on time"))]
    config = OpenAIConfig(model="m", base_url=scripted_server.url, timeout_s=0.3, max_retries=1, **fast_retries)
    async with router_for(config) as router:
        reply = await router.ask("assistant", [Message(role="user", content="q")], max_tokens=8)
    assert reply.text == "on time" and len(scripted_server.requests) == 2


async def test_concurrency_limit_per_backend(scripted_server: ScriptedServer):
    scripted_server.default = Canned(200, completion("ok"), delay_s=0.15)
    config = OpenAIConfig(model="m", base_url=scripted_server.url, max_concurrency=2)
    router = ModelRouter.from_config(RunConfig(backends={"gpt": config}, roles={"user_sim": "gpt", "assistant": "gpt"}))
    async with router:
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for i in range(6):
                group.start_soon(
                    router.ask, "user_sim" if i % 2 else "assistant", [Message(role="user", content=str(i))]
                )
        elapsed = time.monotonic() - started
    assert len(scripted_server.requests) == 6
    assert scripted_server.max_in_flight == 2  # both roles share the backend's limit
    assert elapsed >= 3 * 0.15 * 0.9


async def test_health_reports_unreachable():
    from conftest import free_port

    backend = OpenAIBackend("gpt", OpenAIConfig(model="m", base_url=f"http://127.0.0.1:{free_port()}/v1"))
    try:
        with pytest.raises(BackendError, match="cannot reach"):
            await backend.health()
    finally:
        await backend.aclose()


async def test_context_overflow_refused_for_judge(scripted_server: ScriptedServer):
    config = OpenAIConfig(model="m", base_url=scripted_server.url, context_window=1000)
    async with router_for(config, "judge") as router:
        with pytest.raises(BackendError, match="role judge.*context window is 1000.*refuses to trim"):
            await router.ask("judge", [Message(role="user", content="word " * 2000)], max_tokens=100)
    assert scripted_server.requests == []
