"""`coach chat`: one-shot and interactive chat in the terminal, with the app's private history and crisis net.

Fast tests replace the chat model with scripted ones (`actors.usecases.chat.chat_backend`) and
go through the real `coach` group, the real crisis net and the real `ChatStore`; one slow test
answers "hello" with the bundled SmolLM2.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from pathlib import Path

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner

from actors.chat.gguf_info import write_gguf_header
from actors.pack.loader import load_pack
from actors.usecases import chat as chat_usecase
from actors.usecases.chat import ChatSession
from coach_tui.cli import main
from coach_tui.commands.chat import TerminalChat
from state.chat import ChatStore
from state.workspace import open_store
from tests.scripted import ScriptedBackend
from tests.tui_support import StreamingBackend

REPLY = "**Work:** That sounds like a heavy week. One small step could help."


class RecordingBackend(StreamingBackend):
    """The scripted stream, also keeping each call's sampling settings."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings: list[dict] = []

    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None):
        self.settings.append({"max_tokens": max_tokens, "temperature": temperature})
        async for piece in super().stream(messages, max_tokens=max_tokens, temperature=temperature, seed=seed):
            yield piece


@pytest.fixture
def chats(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "private" / "chats"
    monkeypatch.setenv("COACH_CHAT_DIR", str(folder))
    monkeypatch.setenv("COACH_COUNTRY", "GB")
    return folder


class Models(list):
    """Every model name the command asked for (the list), and the scripted backend each one got."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: list[RecordingBackend] = []

    def __call__(self, model: str, **options) -> RecordingBackend:
        self.append(model)
        self.options = options
        self.backends.append(RecordingBackend(REPLY))
        return self.backends[-1]


@pytest.fixture
def models(monkeypatch) -> Models:
    factory = Models()
    monkeypatch.setattr(chat_usecase, "chat_backend", factory)
    return factory


def coach(tmp_path: Path, *args: str, input: str | None = None):
    """`coach chat ARGS` in tmp_path, with no workspace named (the chat needs none)."""
    return CliRunner().invoke(main, ["chat", *args], input=input, env={"COACH_WORKSPACE": str(tmp_path / "ws")})


def test_one_shot_answers_and_keeps_the_conversation_in_the_private_history(tmp_path, chats, models):
    result = coach(tmp_path, "smollm2-135m-instruct", "Work", "is", "a", "lot.")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == REPLY
    assert models == ["smollm2-135m-instruct"]
    # The pack's system prompt, then the person's words (the arguments joined), as the app sends them.
    [prompt] = models.backends[0].prompts
    assert prompt[0].role == "system" and prompt[0].content == load_pack(None).system_prompt
    assert prompt[-1].role == "user" and prompt[-1].content == "Work is a lot."
    [summary] = ChatStore(chats).list()
    conversation = ChatStore(chats).load(summary.id)
    assert conversation.model == "smollm2-135m-instruct"
    assert [(m.role, m.content) for m in conversation.messages] == [("user", "Work is a lot."), ("assistant", REPLY)]
    assert [m.model for m in conversation.messages] == ["smollm2-135m-instruct"] * 2
    assert "first token" in conversation.messages[1].meta["note"]
    assert conversation.settings == {}  # every default
    # Private: the folder 0700, the file 0600; nothing in (nor any creation of) the workspace.
    [file] = chats.glob("*.json")
    assert stat.S_IMODE(chats.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert not (tmp_path / "ws").exists()


def test_a_prompt_on_standard_input_with_the_default_model_and_the_options(tmp_path, chats, models):
    result = coach(
        tmp_path,
        "--system",
        "You are terse.",
        "--temperature",
        "0.2",
        "--max-tokens",
        "3",
        input="How do I sleep better?\nI wake at four.\n",
    )
    assert result.exit_code == 0, result.output
    assert models == ["smollm2-135m-instruct"]  # the app's default chat model
    backend = models.backends[0]
    [prompt] = backend.prompts
    assert prompt[0].content == "You are terse."
    assert prompt[-1].content == "How do I sleep better?\nI wake at four."
    assert backend.settings == [{"max_tokens": 3, "temperature": 0.2}]
    assert result.stdout.strip() == "**Work:** That sounds"
    [summary] = ChatStore(chats).list()
    assert summary.turns == 1
    # The conversation keeps its own settings, so the app reopens it as it was held here.
    saved = ChatStore(chats).load(summary.id).settings
    assert saved == {"system_prompt": "You are terse.", "temperature": 0.2, "max_tokens": 3}


def test_empty_standard_input_is_one_clear_usage_error(tmp_path, chats, models):
    result = coach(tmp_path, "gemma3-270m", input="  \n")
    assert result.exit_code == 2
    assert "nothing to say" in result.output
    assert models == [] and not chats.exists()


def test_a_crisis_message_prints_the_support_lines_and_steers_the_reply(tmp_path, chats, models):
    result = coach(tmp_path, "smollm2-135m-instruct", "i took a bunch of pills an hour ago")
    assert result.exit_code == 0, result.output
    out = result.stdout
    # The panel's text (the UK's lines, as COACH_COUNTRY asks), above the reply, whatever the model says.
    assert "Support is available" in out and "116 123" in out
    panel = out[out.index("Support is available") : out.index(REPLY)]
    assert "116 123" in panel and "**" not in panel  # above the reply; bold drawn, not marked up
    # The crisis instruction went to the model with this turn only, after the person's words…
    sent = models.backends[0].prompts[-1][-1].content
    assert sent.startswith("i took a bunch of pills") and "Instruction for the assistant" in sent
    assert "emergency" in sent.lower()
    # …and the signal is in the private file, not the instruction.
    [summary] = ChatStore(chats).list()
    said = ChatStore(chats).load(summary.id).messages[0]
    assert said.content == "i took a bunch of pills an hour ago" and "attempt" in said.meta["crisis"]


def test_a_benign_message_prints_no_support_lines(tmp_path, chats, models):
    result = coach(tmp_path, "smollm2-135m-instruct", "This deadline is killing me, but I'll get it done.")
    assert result.exit_code == 0, result.output
    assert "Support is available" not in result.output
    assert "Instruction for the assistant" not in models.backends[0].prompts[-1][-1].content


def test_an_unknown_model_fails_clearly_before_anything_loads(tmp_path, chats, models):
    result = coach(tmp_path, "llama3", "hello")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "unknown model 'llama3'" in result.output
    assert "smollm2-135m-instruct" in result.output and "gemma3-270m" in result.output
    assert models == [] and not chats.exists()  # no backend built, nothing recorded


def test_a_path_must_be_a_gguf_with_a_known_chat_format(tmp_path, chats, models):
    missing = coach(tmp_path, str(tmp_path / "gone.gguf"), "hello")
    assert missing.exit_code == 2 and f"no GGUF file at {tmp_path / 'gone.gguf'}" in missing.output
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    wrong = coach(tmp_path, str(text), "hello")
    assert wrong.exit_code == 1 and "is not a GGUF file" in wrong.output
    # No template in the file, no training run, no Modelfile: refused before loading, never guessed.
    bare = write_gguf_header(tmp_path / "bare.gguf", {"general.architecture": "llama"})
    unknown = coach(tmp_path, str(bare), "hello")
    assert unknown.exit_code == 1 and "has no chat template" in unknown.output
    assert models == [] and not chats.exists()


def test_an_exported_model_is_named_by_its_file_name_like_the_picker_offers_it(tmp_path, chats, models):
    open_store(tmp_path / "ws")  # a workspace (named with -w below, it must exist)
    export = tmp_path / "ws" / "train" / "run-1" / "export" / "therapy-tiny-run-1.Q4_K_M.gguf"
    export.parent.mkdir(parents=True)
    write_gguf_header(
        export,
        {
            "general.architecture": "llama",
            "tokenizer.chat_template": "{{ '<|im_start|>' }}",
            "tokenizer.ggml.eos_token_id": 0,
        },
        tokens=["<|im_end|>"],
    )
    unknown = coach(tmp_path, "nope", "hi")
    assert unknown.exit_code == 2 and "therapy-tiny-run-1.Q4_K_M.gguf" in unknown.output  # listed as available
    result = CliRunner().invoke(main, ["chat", "-w", str(tmp_path / "ws"), "therapy-tiny-run-1.Q4_K_M.gguf", "hi"])
    assert result.exit_code == 0, result.output
    assert models == [str(export.resolve())]
    assert models.options == {"chat_format": "gguf"}  # prompted with the file's own template
    conversation = ChatStore(chats).load(ChatStore(chats).list()[0].id)
    assert conversation.model == str(export.resolve())
    assert [m.model for m in conversation.messages] == [str(export.resolve())] * 2


def test_a_workspace_named_on_purpose_must_exist_and_is_never_created(tmp_path, chats, models):
    typo = tmp_path / "typo"
    for args in (["-w", str(typo), "chat"], ["chat", "-w", str(typo)]):
        result = CliRunner().invoke(main, [*args, "smollm2-135m-instruct", "hello"])
        assert result.exit_code == 2 and f"no workspace at {typo}" in result.output
    assert not typo.exists() and models == [] and not chats.exists()


def test_a_model_that_cannot_answer_is_one_line_and_the_message_is_kept(tmp_path, chats, monkeypatch):
    monkeypatch.setattr(chat_usecase, "chat_backend", lambda model, **_: ScriptedBackend("chat", fail_after=0))
    result = coach(tmp_path, "smollm2-135m-instruct", "hello")
    assert result.exit_code == 1
    assert "The model could not answer" in result.output and "Traceback" not in result.output
    [summary] = ChatStore(chats).list()
    assert [m.role for m in ChatStore(chats).load(summary.id).messages] == ["user"]


@pytest.mark.anyio
async def test_stop_keeps_the_partial_reply_marked_stopped(tmp_path):
    backend = StreamingBackend(REPLY, pause_after="heavy")
    store = ChatStore(tmp_path / "chats")
    session = ChatSession(load_pack(None), "smollm2-135m-instruct", store=store, backend_factory=lambda m, **_: backend)
    written: list[str] = []
    turn = session.send("Work is a lot.")
    async with anyio.create_task_group() as tg:
        done: list = []

        async def reply() -> None:
            done.append(await session.reply(turn, written.append))

        tg.start_soon(reply)
        with anyio.fail_after(5):
            while not any("heavy" in w for w in written):
                await anyio.sleep(0.01)
        session.stop()
    [result] = done
    assert result.stopped and result.note == "stopped" and not result.failed
    saved = store.load(session.conversation.id).messages[-1]
    assert saved.role == "assistant" and saved.content.endswith("heavy") and saved.meta["note"] == "stopped"
    # The next turn is answered in full.
    backend.pause_after = None
    again = await session.reply(session.send("Thanks."))
    assert again.text == REPLY and not again.stopped


def _session(tmp_path: Path, backend) -> ChatSession:
    store = ChatStore(tmp_path / "chats")
    return ChatSession(load_pack(None), "smollm2-135m-instruct", store=store, backend_factory=lambda m, **_: backend)


def test_interactive_commands_turns_and_leaving(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COACH_COUNTRY", "GB")
    backend = StreamingBackend(REPLY)
    session = _session(tmp_path, backend)
    lines = iter(["hello there", "", "/?", "/support", "/nope", "and a second thing", "/bye", "never read"])
    with start_blocking_portal() as portal:
        TerminalChat(session, portal).interactive(read=lambda prompt: next(lines))
    out = capsys.readouterr().out
    assert out.count(REPLY) == 2
    assert "/bye      leave" in out and "Support is available" in out and "116 123" in out
    assert "Unknown command '/nope'" in out
    assert next(lines) == "never read"
    saved = session.store.load(session.conversation.id)
    assert [m.content for m in saved.messages if m.role == "user"] == ["hello there", "and a second thing"]
    # Warmed before the first message; the second turn carried the first in its prompt.
    assert len(backend.prompts) == 3 and len(backend.prompts[-1]) == 4


def test_interactive_ends_on_end_of_input_and_ctrl_c_at_the_prompt_only_explains(tmp_path, capsys):
    session = _session(tmp_path, StreamingBackend(REPLY))
    answers: list = [KeyboardInterrupt(), "hi", EOFError()]

    def read(prompt: str) -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    with start_blocking_portal() as portal:
        TerminalChat(session, portal).interactive(read=read)
    assert "Use /bye or Ctrl-D to leave." in capsys.readouterr().out
    assert answers == [] and len(session.conversation.messages) == 2


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler, reason="SIGINT is handled")
def test_ctrl_c_during_a_reply_stops_it_and_the_prompt_comes_back(tmp_path, capsys):
    """A real SIGINT while the reply streams: the reply is kept, marked stopped, and the next one answers."""
    backend = StreamingBackend(REPLY, pause_after="heavy")
    session = _session(tmp_path, backend)
    paused = threading.Event()
    original = backend.stream

    async def stream(messages, **kwargs):
        async for piece in original(messages, **kwargs):
            yield piece
            if "heavy" in piece and backend.pause_after:
                paused.set()

    backend.stream = stream
    lines = iter(["tell me about my week", "and now?", "/bye"])

    def read(prompt: str) -> str:
        line = next(lines)
        if line == "and now?":
            backend.pause_after = None
        return line

    def interrupt() -> None:
        if paused.wait(10):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with start_blocking_portal() as portal:
        TerminalChat(session, portal).interactive(read=read)
    captured = capsys.readouterr()
    assert "[stopped" in captured.err
    first, second = [m for m in session.conversation.messages if m.role == "assistant"]
    assert first.meta["note"] == "stopped" and first.content.endswith("heavy")
    assert second.content == REPLY and second.meta["note"] != "stopped"


@pytest.mark.slow
def test_the_bundled_model_answers_hello_offline(tmp_path, chats):
    result = coach(tmp_path, "smollm2-135m-instruct", "hello", "--max-tokens", "8")
    assert result.exit_code == 0, result.output
    [summary] = ChatStore(chats).list()
    reply = ChatStore(chats).load(summary.id).messages[-1]
    assert reply.role == "assistant" and reply.content and result.stdout.rstrip().endswith(reply.content)
    assert "first token" in reply.meta["note"]


def test_long_support_lines_wrap_inside_the_panel_and_are_never_cut(tmp_path, capsys):
    session = _session(tmp_path, StreamingBackend(REPLY))
    lines = "**In immediate danger:** call your local emergency number (112 in much of the world)."
    with start_blocking_portal() as portal:
        face = TerminalChat(session, portal)
        face.console.width = 40
        face.show_support(lines)
    out = capsys.readouterr().out
    words = " ".join(out.replace("│", " ").split())
    assert "In immediate danger: call your local emergency number (112 in much of the world)." in words
