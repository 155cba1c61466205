"""Several servers behind one backend, URLs joined and shown safely (issue 17, parts 1 and 4).

The replica choice is pure bookkeeping, tested with a clock of its own; the
backend is then tested against real HTTP servers on loopback.
"""

from __future__ import annotations

import anyio
import pytest
from conftest import Canned, ScriptedServer
from test_backend_openai import completion, router_for

from actors.backends import BackendError, Message
from actors.backends.replicas import ReplicaSet
from actors.backends.urls import join, public
from actors.run_config import OpenAIConfig, RunConfigError, load_run_config

ASK = [Message(role="user", content="q")]


def test_an_endpoint_goes_before_the_query():
    assert join("https://h.example/openai/v1?api-version=2024-10", "chat/completions") == (
        "https://h.example/openai/v1/chat/completions?api-version=2024-10"
    )
    assert join("http://127.0.0.1:8000/v1/", "/models") == "http://127.0.0.1:8000/v1/models"


def test_secrets_in_urls_are_masked():
    assert public("https://bob:hunter2@h.example/v1?key=abc&x=1") == "https://bob:***@h.example/v1?key=***&x=***"
    assert public("https://token@h.example/v1") == "https://***@h.example/v1"
    assert public("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_least_busy_replica_first_and_a_failed_one_rests():
    clock = Clock()
    replicas = ReplicaSet(["http://a", "http://b", "http://c"], rest_s=30, clock=clock)
    a, b, c = replicas.replicas
    taken = []
    for _ in range(6):
        r = replicas.pick()
        replicas.begin(r)
        taken.append(r)
    assert sorted(r.base_url for r in taken) == ["http://a", "http://a", "http://b", "http://b", "http://c", "http://c"]
    for r in taken:
        replicas.end(r, failed=r is b)  # b's calls fail: it rests for 30 s
    assert all(replicas.pick() is not b for _ in range(5))
    clock.now += 31  # rested: b is tried again, as any healthy replica
    replicas.begin(a)
    replicas.begin(c)
    assert replicas.pick() is b
    replicas.end(a, failed=False)
    replicas.end(c, failed=False)
    # every replica resting: the one whose rest ends first is tried
    for r in (a, b, c):
        replicas.begin(r)
        replicas.end(r, failed=True)
        clock.now += 1
    assert replicas.pick() is a


def test_affinity_prefers_one_replica_while_it_is_not_much_busier():
    replicas = ReplicaSet(["http://a", "http://b", "http://c", "http://d"])
    first = replicas.pick("the judge's rubric and transcript")
    assert all(replicas.pick("the judge's rubric and transcript") is first for _ in range(3))
    for _ in range(3):  # the affine replica gets busy: calls go elsewhere
        replicas.begin(first)
    assert replicas.pick("the judge's rubric and transcript") is not first


def test_affinity_never_sends_a_replica_more_than_it_serves_at_once():
    """Every call of one judge prompt, 4 replicas of 2 places each: 2 per replica, not 3 on the affine one."""
    replicas = ReplicaSet(["http://a", "http://b", "http://c", "http://d"], per_replica=2)
    for _ in range(8):
        replicas.begin(replicas.pick("the judge's rubric and transcript"))
    assert [r.outstanding for r in replicas.replicas] == [2, 2, 2, 2]


def test_max_concurrency_is_per_replica():
    """4 replicas capped at 2 each admit 8 calls at once: the backend's limit is not one replica's worth."""
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1", "http://127.0.0.1:4/v1"]
    four = router_for(OpenAIConfig(model="m", base_url=urls, max_concurrency=2)).backends_for("assistant")[0]
    one = router_for(OpenAIConfig(model="m", base_url=urls[0], max_concurrency=2)).backends_for("assistant")[0]
    assert (four.limiter.total_tokens, one.limiter.total_tokens) == (8, 2)
    assert four.replicas.per_replica == 2


def test_a_base_url_list_is_validated_with_its_secrets_masked(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "backends:\n  vllm: {kind: openai, model: m, base_url: ['http://127.0.0.1:1/v1', 'ftp://u:pw@h/v1']}\n"
        "roles: {assistant: vllm}\n"
    )
    with pytest.raises(RunConfigError) as caught:
        load_run_config(config)
    assert "ftp://u:***@h/v1" in str(caught.value) and "pw" not in str(caught.value)
    with pytest.raises(ValueError):
        OpenAIConfig(model="m", base_url=[])


@pytest.fixture
def two_servers():
    servers = [ScriptedServer().start(), ScriptedServer().start()]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_calls_spread_over_replicas_and_a_failing_one_is_left_out(two_servers):
    good, bad = two_servers
    good.default = Canned(200, completion("hello"), delay_s=0.05)
    bad.default = Canned(503, {"error": {"message": "down", "type": "unavailable"}})
    config = OpenAIConfig(
        model="m",
        base_url=[bad.url + "/v1", good.url + "/v1"],
        max_concurrency=8,
        max_retries=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        replica_rest_s=60,
    )
    async with router_for(config, "assistant") as router:
        replies = []

        async def one(i: int) -> None:
            replies.append(await router.ask("assistant", [Message(role="user", content=f"q{i}")], max_tokens=8))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
    assert [r.text for r in replies] == ["hello"] * 8
    # the failing replica was tried, then rested: far fewer calls than the healthy one served
    assert 1 <= len(bad.posts("/v1/chat/completions")) < len(good.posts("/v1/chat/completions")) == 8


async def test_both_healthy_replicas_share_the_load(two_servers):
    for server in two_servers:
        server.default = Canned(200, completion("ok"), delay_s=0.1)
    config = OpenAIConfig(model="m", base_url=[s.url + "/v1" for s in two_servers], max_concurrency=8)
    async with router_for(config, "assistant") as router, anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(router.ask, "assistant", [Message(role="user", content=f"q{i}")])
    served = [len(s.posts("/v1/chat/completions")) for s in two_servers]
    assert sum(served) == 8 and max(served) - min(served) <= 2  # least busy, within the affinity slack


async def test_max_completion_tokens_query_urls_and_stream_usage(scripted_server: ScriptedServer):
    scripted_server.default = Canned(200, completion("ok"))
    config = OpenAIConfig(
        model="m", base_url=scripted_server.url + "/v1?api-version=7", token_limit_field="max_completion_tokens"
    )
    async with router_for(config, "assistant") as router:
        await router.ask("assistant", ASK, max_tokens=12)
    [request] = scripted_server.requests
    assert request.path == "/v1/chat/completions?api-version=7"
    assert request.body["max_completion_tokens"] == 12 and "max_tokens" not in request.body

    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    scripted_server.default = Canned(
        200,
        None,
        events=[
            ("message", {"choices": [{"delta": {"content": "hi"}}]}),
            ("message", {"choices": [], "usage": usage}),
            ("message", "[DONE]"),
        ],
    )
    config = OpenAIConfig(model="m", base_url=scripted_server.url + "/v1", stream_usage=True)
    async with router_for(config, "assistant") as router:
        backend = router.backends_for("assistant")[0]
        pieces = [p async for p in backend.stream(ASK, max_tokens=4)]
    assert pieces == ["hi"]
    assert scripted_server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert (backend.last_stream_usage.prompt_tokens, backend.last_stream_usage.completion_tokens) == (5, 2)


async def test_errors_never_show_a_urls_secrets(scripted_server: ScriptedServer):
    scripted_server.default = Canned(400, {"error": {"message": "bad request", "type": "invalid"}})
    config = OpenAIConfig(model="m", base_url=scripted_server.url.replace("http://", "http://u:pw@") + "/v1?key=sk-1")
    async with router_for(config, "assistant") as router:
        with pytest.raises(BackendError) as caught:
            await router.ask("assistant", ASK)
    assert "sk-1" not in str(caught.value) and ":pw@" not in str(caught.value)
    assert "key=***" in str(caught.value)
