"""The Chat screen that never breaks, with Textual's pilot and scripted models through the real app:
the model belongs to its conversation, every message records it and a switch shows in the log; the
status counts the turns of the conversation on screen; delete asks; the first message typed right
after picking a model is sent; regenerate, edit, settings, search, rename and Markdown export; the
picker describes each model and offers the run config's servers; a GGUF with no known template is
refused clearly. The crisis net and the private files hold in every one of these."""

from __future__ import annotations

import stat

import pytest
from textual import events
from textual.widgets import Input, OptionList

from coach_tui.widgets.chat_log import AssistantSaid, YouSaid
from coach_tui.widgets.crisis_panel import CrisisPanel
from state.chat import ChatStore
from tests.test_tui_chat import open_chat, say
from tests.tui_support import StreamingBackend, make_app, text_of, wait_for

pytestmark = pytest.mark.anyio

SMOL, GEMMA = "smollm2-135m-instruct", "gemma3-270m"


class RecordingBackend(StreamingBackend):
    """A scripted stream that also records the sampling settings of each call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []

    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None):
        self.calls.append({"max_tokens": max_tokens, "temperature": temperature})
        async for piece in super().stream(messages, max_tokens=max_tokens, temperature=temperature, seed=seed):
            yield piece


def app_asking(tmp_path, backend=None):
    """The app, with the models it asked its backend factory for in ``app.asked``."""
    backend = backend or StreamingBackend()
    app = make_app(tmp_path, chat_backend=backend)
    app.asked = []

    def factory(model: str):
        app.asked.append(model)
        return backend

    app.make_chat_backend = factory
    return app


def saved_conversation(tmp_path, model: str, turns: int, first: str = "Turn"):
    store = ChatStore(tmp_path / "chats")
    conversation = store.new(model=model)
    for n in range(turns):
        conversation.add("user", f"{first} {n}: work and sleep.")
        conversation.add("assistant", f"Reply {n}.", note="scripted")
    store.save(conversation)
    return conversation


def status(screen) -> str:
    return text_of(screen.query_one("#chat-status"))


async def test_the_status_counts_the_turns_of_the_conversation_on_screen(tmp_path):
    """Reproduced: after ctrl+n, opening a 4-turn conversation from the list kept saying "0 turns"."""
    four = saved_conversation(tmp_path, SMOL, 4, "Older")
    saved_conversation(tmp_path, SMOL, 1, "Newer")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_chat(pilot)
        assert "1 turn" in status(screen)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: "0 turns" in status(screen))
        listing = screen.query_one("#conversations", OptionList)
        listing.focus()
        listing.highlighted = [listing.get_option_at_index(i).id for i in range(listing.option_count)].index(four.id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.conversation.id == four.id)
        assert "4 turns" in status(screen)
        assert "4 turns" in str(listing.get_option_at_index(listing.highlighted).prompt)


async def test_the_previous_releases_history_opens_in_the_app_with_its_chats_intact(tmp_path):
    from tests.test_chat_history_format import PREVIOUS_RELEASE, previous_release_history

    previous_release_history(tmp_path / "chats")
    app = app_asking(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert screen.conversation.id == PREVIOUS_RELEASE["id"]
        said = [m["content"] for m in PREVIOUS_RELEASE["messages"] if m["role"] == "user"]
        assert [text_of(w).removeprefix("You\n") for w in screen.query(YouSaid)] == said
        assert len(screen.query(AssistantSaid)) == 2
        assert screen.query_one(CrisisPanel).shown  # its crisis signal, recorded then, still shows
        assert status(screen) == "model gemma3-270m · 3 turns" and app.chat_model == GEMMA


async def test_reopening_a_conversation_after_a_restart_uses_its_own_model(tmp_path):
    saved = saved_conversation(tmp_path, GEMMA, 1)
    app = app_asking(tmp_path)
    assert app.chat_model == SMOL  # the app's default: the conversation must win over it
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert screen.conversation.id == saved.id and app.chat_model == GEMMA
        assert "model gemma3-270m" in status(screen)
        await say(pilot, screen, "And one more thing.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 4)
        assert set(app.asked) == {GEMMA}
    again = ChatStore(tmp_path / "chats").load(saved.id)
    assert [m.model for m in again.messages[2:]] == [GEMMA, GEMMA] and again.model == GEMMA


async def pick_model(pilot, model_id: str) -> None:
    from coach_tui.screens.model_picker import ModelPicker

    app = pilot.app
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
    options = app.screen.query_one("#models", OptionList)
    options.focus()
    options.highlighted = [options.get_option_at_index(i).id for i in range(options.option_count)].index(model_id)


async def test_switching_models_mid_chat_moves_the_conversation_and_shows_in_the_log(tmp_path):
    from coach_tui.widgets.chat_log import ModelSwitch

    app = app_asking(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        await say(pilot, screen, "First, on the small model.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        await pick_model(pilot, GEMMA)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen and screen.query(ModelSwitch))
        assert text_of(screen.query_one(ModelSwitch)) == f"Model changed: {SMOL} → {GEMMA}"
        await say(pilot, screen, "Then on Gemma.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 4)
        conversation_id = screen.conversation.id
    saved = ChatStore(tmp_path / "chats").load(conversation_id)
    assert [m.model for m in saved.messages] == [SMOL, SMOL, GEMMA, GEMMA] and saved.model == GEMMA
    again = app_asking(tmp_path)
    async with again.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        [switch] = screen.query(ModelSwitch)
        assert (switch.before, switch.after) == (SMOL, GEMMA) and again.chat_model == GEMMA
        notes = [text_of(n) for n in screen.query("TurnNote")]
        assert notes[0].startswith(SMOL) and notes[1].startswith(GEMMA)


async def test_delete_asks_first(tmp_path):
    from coach_tui.screens.confirm import Confirm

    kept = saved_conversation(tmp_path, SMOL, 2)
    path = tmp_path / "chats" / f"{kept.id}.json"
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_chat(pilot)
        listing = screen.query_one("#conversations", OptionList)
        listing.focus()
        listing.highlighted = 0
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert path.exists()  # nothing happens before the answer
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        assert path.exists() and screen.conversation.id == kept.id
        listing.focus()
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: not path.exists())
        await wait_for(pilot, lambda: screen.conversation.id != kept.id and not screen.conversation.messages)


async def test_the_first_message_typed_right_after_picking_a_model_is_sent_to_it(tmp_path):
    """Reproduced: keys typed while the picker closed went to its list and were lost, and the enter
    that should have sent them crashed the app (a second dismiss: "Can't pop screen")."""
    app = app_asking(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        await pick_model(pilot, GEMMA)
        for key in ["enter", *"hello", "space", *"there", "enter"]:  # as fast as a person types
            character = " " if key == "space" else (key if len(key) == 1 else None)
            app.post_message(events.Key(key, character))
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        [mine, reply] = screen.conversation.messages
        assert (mine.content, mine.model, reply.model) == ("hello there", GEMMA, GEMMA)
        assert app.asked[-1] == GEMMA and screen.query_one("#chat-input", Input).value == ""
        assert [text_of(w) for w in screen.query(YouSaid)] == ["You\nhello there"]


async def test_regenerate_writes_the_last_reply_again_and_the_crisis_net_reads_it_again(tmp_path):
    backend = RecordingBackend("A first answer.")
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await say(pilot, screen, "i took a bunch of pills an hour ago")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        backend.reply = "A second answer."
        asked = len(backend.prompts)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(backend.prompts) == asked + 1 and not screen.generating)
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        [mine, reply] = screen.conversation.messages
        assert reply.content == "A second answer." and [s.source.strip() for s in screen.query(AssistantSaid)] == [
            "A second answer."
        ]
        assert "Instruction for the assistant" in backend.prompts[-1][-1].content  # steered again
        assert screen.query_one(CrisisPanel).shown
        saved = app.chat_store.load(screen.conversation.id)
        assert [m.content for m in saved.messages] == [mine.content, "A second answer."]


async def test_up_in_the_empty_input_edits_the_last_message(tmp_path):
    backend = StreamingBackend()
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await say(pilot, screen, "I sleep badly")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        box = screen.query_one("#chat-input", Input)
        box.focus()
        await pilot.press("up")
        assert box.value == "I sleep badly" and "editing your last message" in status(screen)
        await pilot.press("escape")  # cancels the edit, changes nothing
        assert box.value == "" and len(screen.conversation.messages) == 2
        asked = len(backend.prompts)
        await pilot.press("up", *" since the move", "enter")
        await wait_for(pilot, lambda: len(backend.prompts) == asked + 1 and not screen.generating)
        assert screen.conversation.messages[0].content == "I sleep badly since the move"
        assert len(screen.conversation.messages) == 2 and len(screen.query(YouSaid)) == 1
        assert backend.prompts[-1][-1].content == "I sleep badly since the move"
        assert "1 turn" in status(screen)


async def test_each_conversation_keeps_its_own_settings(tmp_path):
    from coach_tui.screens.chat_dialogs import ChatSettingsDialog

    backend = RecordingBackend("one two three four five six seven")
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(100, 36)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatSettingsDialog))
        dialog = app.screen
        dialog.query_one("#temperature", Input).value = "warm"
        await pilot.press("ctrl+s")
        assert app.screen is dialog and "temperature: 'warm' is not a number" in text_of(dialog.query_one("#problems"))
        dialog.query_one("#temperature", Input).value = "0.2"
        dialog.query_one("#max_tokens", Input).value = "16"
        dialog.query_one("#system_prompt").text = "Answer in three words."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen)
        await say(pilot, screen, "Hello")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        assert backend.calls[-1] == {"max_tokens": 16, "temperature": 0.2}
        assert backend.prompts[-1][0].content == "Answer in three words."
        conversation_id = screen.conversation.id
        await pilot.press("ctrl+n")  # another conversation: the defaults
        await say(pilot, screen, "Hi again")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        assert backend.calls[-1]["temperature"] == 0.7 and backend.prompts[-1][0].content == app.pack.system_prompt
    saved = ChatStore(tmp_path / "chats").load(conversation_id)
    assert saved.settings == {"system_prompt": "Answer in three words.", "temperature": 0.2, "max_tokens": 16}


async def test_search_rename_and_export_to_markdown(tmp_path):
    from coach_tui.screens.chat_dialogs import RenameDialog, SearchDialog

    sister = saved_conversation(tmp_path, SMOL, 1, "My sister")
    saved_conversation(tmp_path, SMOL, 2, "Deadlines")
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        assert screen.conversation.id != sister.id
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchDialog))
        await pilot.press(*"SISTER")
        hits = app.screen.query_one("#hits", OptionList)
        await wait_for(pilot, lambda: hits.option_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.conversation.id == sister.id)
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, RenameDialog))
        app.screen.query_one(Input).value = "About my sister"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.conversation.title == "About my sister")
        await pilot.press("ctrl+s")
        folder = tmp_path / "ws" / "exports" / "chats"
        await wait_for(pilot, lambda: folder.is_dir() and list(folder.glob("*.md")))
        [exported] = folder.glob("*.md")
        assert any(str(exported) in n.message for n in app._notifications)  # the path is shown
        text = exported.read_text(encoding="utf-8")
        assert text.startswith("# About my sister\n") and "My sister 0: work and sleep." in text
        assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert ChatStore(tmp_path / "chats").load(sister.id).title == "About my sister"


async def test_the_picker_describes_each_model_and_offers_the_run_configs_servers(tmp_path):
    from actors.chat.gguf_info import write_gguf_header
    from coach_tui.screens.model_picker import ModelPicker

    exported = tmp_path / "ws" / "train" / "run-1" / "coach.Q4_K_M.gguf"
    exported.parent.mkdir(parents=True)
    write_gguf_header(
        exported,
        {"general.architecture": "gemma3", "gemma3.context_length": 32768, "general.file_type": 15},
        ["<pad>", "<eos>"],
    )
    config = tmp_path / "run-config.yaml"
    config.write_text(
        "backends:\n  ollama:\n    kind: openai\n    model: llama3.2\n    base_url: http://127.0.0.1:11434/v1\n",
        encoding="utf-8",
    )
    app = app_asking(tmp_path)
    app.config_path = config
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_chat(pilot)
        await pick_model(pilot, "server:ollama")
        picker = app.screen
        assert isinstance(picker, ModelPicker)
        options = picker.query_one("#models", OptionList)

        def prompt_of(model_id: str) -> str:
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            return str(options.get_option_at_index(ids.index(model_id)).prompt)

        await wait_for(pilot, lambda: "Q4_K_M · 32,768 ctx" in prompt_of(str(exported.resolve())))
        assert "llama3.2 at http://127.0.0.1:11434/v1" in prompt_of("server:ollama")
        assert "Q4_1 · 8,192 ctx" in prompt_of(SMOL)  # the bundled model's own file
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen and screen.conversation.model == "server:ollama")
        assert "model ollama (server)" in status(screen)
        await say(pilot, screen, "Hello server")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        assert app.asked[-1] == "server:ollama"
        assert stat.S_IMODE((tmp_path / "chats" / f"{screen.conversation.id}.json").stat().st_mode) == 0o600


async def test_a_gguf_whose_template_is_unknown_is_refused_clearly(tmp_path):
    from actors.chat.gguf_info import write_gguf_header
    from coach_tui.screens.model_picker import ModelPicker

    mystery = write_gguf_header(tmp_path / "mystery.gguf", {"general.architecture": "llama"}, ["<s>"])
    backend = StreamingBackend()
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        asked = len(backend.prompts)  # the default model's warm-up
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        app.screen.query_one("#path", Input).value = str(mystery)
        app.screen.query_one("#path", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen and app.chat_model == str(mystery))
        await wait_for(pilot, lambda: any("mystery.gguf has no chat template" in n.message for n in app._notifications))
        await say(pilot, screen, "Hello?")
        await wait_for(pilot, lambda: not screen.generating and screen.query(AssistantSaid))
        reply = screen.query_one(AssistantSaid)
        assert "no chat template" in reply.source and reply.has_class("-error")
        assert len(backend.prompts) == asked  # nothing was ever sent to the model in a guessed format
        assert [m.role for m in screen.conversation.messages] == ["user"]  # the message is kept
