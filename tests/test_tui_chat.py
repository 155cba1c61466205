"""The chat screen with Textual's pilot: a streamed reply, saved privately; conversations kept and
resumable; the support panel on crisis phrasing and not on benign text. One slow test uses the
real bundled model."""

from __future__ import annotations

import stat

import anyio
import pytest
from textual.widgets import Input

from actors.safety import load_safety_net
from coach_tui.screens.chat import ChatScreen
from coach_tui.widgets.chat_log import AssistantSaid, YouSaid
from coach_tui.widgets.crisis_panel import CrisisPanel
from state.chat import ChatStore
from tests.tui_support import StreamingBackend, make_app, text_of, wait_for

pytestmark = pytest.mark.anyio


async def open_chat(pilot):
    await pilot.press("3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen))
    screen = pilot.app.screen
    # Generous: with the real model the warm-up loads it and evaluates the system prompt.
    await wait_for(pilot, lambda: screen.conversation is not None and not screen.workers, timeout=240)
    return screen


async def say(pilot, screen, text: str) -> None:
    box = screen.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await box.action_submit()  # not pilot.press: that waits for the app to be idle, i.e. the whole reply
    await pilot.pause()


async def test_a_reply_streams_in_and_the_conversation_is_saved_privately(tmp_path):
    backend = StreamingBackend(gap_s=0.01, pause_after="heavy")
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert "Coaching, not therapy" in text_of(screen.query_one("#chat-note"))
        await say(pilot, screen, "Work is a lot and I sleep badly.")
        await wait_for(pilot, lambda: len(screen.query(YouSaid)) == 1 and len(screen.query(AssistantSaid)) == 1)
        reply = screen.query_one(AssistantSaid)
        # Streaming: the reply is visible while it is still being written.
        await wait_for(pilot, lambda: "heavy" in reply.source)
        assert screen.generating and "help." not in reply.source
        backend.resume()
        await wait_for(pilot, lambda: not screen.generating)
        assert "One small step could help." in reply.source
        # The prompt was the pack's system prompt and the history.
        system, user = backend.prompts[-1][0], backend.prompts[-1][-1]
        assert system.role == "system" and system.content == app.pack.system_prompt
        assert user.content == "Work is a lot and I sleep badly."
        assert not screen.query_one(CrisisPanel).shown
    # Saved to the private folder: 0700 directory, 0600 file, never in the workspace.
    chats = tmp_path / "chats"
    files = list(chats.glob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(chats.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert not list((tmp_path / "ws").rglob("*.json"))
    [saved] = ChatStore(chats).list()
    assert saved.turns == 1 and saved.title.startswith("Work is a lot")


async def test_conversations_are_kept_and_resumable(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_chat(pilot)
        await say(pilot, screen, "First conversation about my sister.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        first_id = screen.conversation.id
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen.conversation.id != first_id and not screen.query(YouSaid))
        await say(pilot, screen, "Second one, about sleep.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 2)
        assert len(app.chat_store.list()) == 2
    again = make_app(tmp_path)
    async with again.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert screen.conversation.messages[0].content == "Second one, about sleep."  # most recent reopened
        # At 80 columns the list is folded away; ctrl+b opens it and enter picks a conversation.
        await pilot.press("ctrl+b")
        listing = screen.query_one("#conversations")
        await wait_for(pilot, lambda: screen.focused is listing)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: screen.conversation.id == first_id)
        assert [text_of(w) for w in screen.query(YouSaid)] == ["You\nFirst conversation about my sister."]
        await say(pilot, screen, "And one more thing.")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 4)
        assert len(again.chat_store.load(first_id).messages) == 4


BENIGN = [
    "This deadline is killing me, but I'll get it done.",
    "We went bungee jumping off a bridge on holiday, best day ever!",
    "Watched a documentary about suicide bombers last night, heavy stuff.",
    "fiz trilha no fim de semana e morri de rir com meus amigos",
    "ich habe mir beim Zwiebelschneiden in den Finger geschnitten, halb so wild",
]

# (message, a category the net must name, words the crisis instruction must contain): several
# categories and languages, written the way people in trouble write.
CRISIS = [
    ("i took a bunch of pills an hour ago", "attempt", "emergency"),
    ("i dont see the point of going on anymore", None, ""),
    ("ya no quiero estar aquí, quiero matarme", None, ""),
    ("j'ai acheté une corde aujourd'hui", None, ""),
    ("er hat gesagt er bringt mich um wenn ich gehe", "danger_from_others", ""),
    ("the voices keep telling me to jump", "command_hallucinations", ""),
]


async def test_crisis_messages_in_several_languages_show_the_panel_and_steer_the_reply(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_COUNTRY", "GB")
    backend = StreamingBackend()
    app = make_app(tmp_path, chat_backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        panel = screen.query_one(CrisisPanel)
        for text in BENIGN:
            await say(pilot, screen, text)
            await wait_for(pilot, lambda: not screen.generating)
            assert not panel.shown, text
            assert "Instruction for the assistant" not in backend.prompts[-1][-1].content, text
        assert "crisis" not in screen.conversation.messages[-2].meta
        for text, category, must_say in CRISIS:
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: not panel.shown and not screen.conversation.messages)
            await say(pilot, screen, text)
            await wait_for(pilot, lambda: panel.shown)
            await wait_for(pilot, lambda: not screen.generating)
            # The instruction went to the model with this turn, after the person's own words…
            sent = backend.prompts[-1][-1].content
            assert sent.startswith(text) and "Instruction for the assistant" in sent, text
            assert must_say.lower() in sent.lower(), text
            # …and the signal is recorded in the private chat file, not the instruction.
            stored = app.chat_store.load(screen.conversation.id).messages[0]
            assert stored.content == text and stored.meta["crisis"], text
            if category:
                assert category in stored.meta["crisis"], (text, stored.meta)
            # Never blocking: the reply came and the input keeps focus.
            assert screen.conversation.messages[-1].role == "assistant"
            assert screen.focused is screen.query_one("#chat-input", Input)
        # The UK's lines, as the setting asked.
        assert "116 123" in load_safety_net(app.pack).resources("GB")
        await pilot.press("ctrl+r")
        assert not panel.shown
        await pilot.press("ctrl+r")
        assert panel.shown
        # A fresh conversation starts without it; reopening a flagged one shows it again.
        flagged = screen.conversation.id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not panel.shown
        await screen.open(flagged)
        assert panel.shown


async def test_context_from_earlier_messages_opens_the_panel(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        panel = screen.query_one(CrisisPanel)
        await say(pilot, screen, "i just want it all to stop")
        await wait_for(pilot, lambda: not screen.generating)
        await say(pilot, screen, "i have them all here now")
        await wait_for(pilot, lambda: panel.shown)
        await wait_for(pilot, lambda: not screen.generating)


async def test_the_country_setting_changes_the_support_lines_and_is_kept_privately(tmp_path, monkeypatch):
    monkeypatch.delenv("COACH_COUNTRY", raising=False)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        net = load_safety_net(app.pack)
        await pilot.press("ctrl+l")
        from textual.widgets import OptionList

        from coach_tui.screens.country_picker import CountryPicker

        await wait_for(pilot, lambda: isinstance(app.screen, CountryPicker))
        options = app.screen.query_one(OptionList)
        codes = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = codes.index("ES")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        panel = screen.query_one(CrisisPanel)
        assert panel.shown and panel.text == net.resources("ES") and "024" in panel.text
    assert app.chat_store.settings()["country"] == "ES"
    settings = tmp_path / "chats" / "settings.json"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600


async def test_the_chat_note_fits_80_columns(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        note = screen.query_one("#chat-note")
        assert len(text_of(note)) <= note.size.width, text_of(note)
        assert "ctrl+r" in text_of(note)


async def test_escape_stops_a_reply_and_keeps_what_was_written(tmp_path):
    app = make_app(tmp_path, chat_backend=StreamingBackend(" ".join(["word"] * 100), gap_s=0.02))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await say(pilot, screen, "Tell me a lot.")
        await wait_for(pilot, lambda: "word word" in screen.query_one(AssistantSaid).source)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating)
        [_, reply] = screen.conversation.messages
        assert reply.role == "assistant" and reply.meta["note"] == "stopped" and reply.content.count("word") < 100


@pytest.mark.slow
async def test_real_bundled_model_streams_a_reply(tmp_path):
    from actors.chat.engine import chat_backend

    app = make_app(tmp_path, chat_backend=chat_backend())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        with anyio.fail_after(240):
            await wait_for(pilot, lambda: not screen.workers, timeout=240)  # warm-up done
        await say(pilot, screen, "I keep putting off a hard email at work.")
        await wait_for(
            pilot, lambda: screen.query(AssistantSaid) and screen.query_one(AssistantSaid).source.strip(), timeout=240
        )
        await wait_for(pilot, lambda: not screen.generating, timeout=240)
        reply = screen.conversation.messages[-1]
        assert reply.role == "assistant" and reply.content and "first token" in reply.meta["note"]


@pytest.mark.slow
async def test_esc_stops_a_real_reply_cleanly_and_the_model_answers_again(tmp_path):
    """Esc mid-reply ends the generation at its next token: the partial reply is kept, marked
    "stopped", with no "Chat failed: generator already executing", and the model's context is
    free for the next message (the thread that held it handed it back)."""
    from actors.chat.engine import chat_backend

    app = make_app(tmp_path, chat_backend=chat_backend())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await wait_for(pilot, lambda: not screen.workers, timeout=240)  # warm-up done
        await say(pilot, screen, "Tell me, in detail, how to plan a calm week with many meetings.")
        await wait_for(
            pilot, lambda: screen.query(AssistantSaid) and screen.query_one(AssistantSaid).source.strip(), timeout=240
        )
        screen.action_escape()
        await wait_for(pilot, lambda: not screen.generating and not screen.workers, timeout=60)
        stopped = screen.conversation.messages[-1]
        assert stopped.role == "assistant" and stopped.content and stopped.meta["note"] == "stopped"
        failures = [n.message for n in app._notifications if "failed" in n.message.lower()]
        assert not failures
        await say(pilot, screen, "Thanks. One short tip?")
        await wait_for(pilot, lambda: len(screen.conversation.messages) == 4, timeout=240)
        assert screen.conversation.messages[-1].content


async def test_the_model_picker_offers_bundled_and_exported_models(tmp_path):
    from textual.widgets import OptionList

    from coach_tui.screens.model_picker import ModelPicker

    app = make_app(tmp_path)
    exported = tmp_path / "ws" / "exports" / "coach-q4.gguf"
    exported.parent.mkdir(parents=True)
    exported.write_bytes(b"GGUF")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        options = app.screen.query_one("#models", OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids[:2] == ["smollm2-135m-instruct", "gemma3-270m"] and str(exported) in ids
        options.focus()
        options.highlighted = ids.index(str(exported))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_model == str(exported))
        assert app.screen is screen and "coach-q4.gguf" in text_of(screen.query_one("#chat-status"))
