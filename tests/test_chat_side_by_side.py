"""Side by side: one message to two models in two streaming columns, through the real app.

Scripted streams (paused mid-reply, so "both at once" is seen however slow the machine) show
both replies growing before either ends, Esc stopping both with what each wrote kept and
marked stopped, the crisis net reading the message once and steering both, each column's
conversation saved privately with its own model and linked to the other, and one model
failing without stopping the other. One slow test chats with the two bundled models.
"""

from __future__ import annotations

import anyio
import pytest
from textual.widgets import Input, OptionList

from actors.backends.errors import BackendError
from actors.safety.detector import SafetyNet
from coach_tui.screens.chat import ChatScreen
from coach_tui.screens.model_picker import ModelPicker
from coach_tui.screens.side_by_side import SideBySideScreen
from coach_tui.widgets.chat_column import ChatColumn
from coach_tui.widgets.chat_log import AssistantSaid, YouSaid
from coach_tui.widgets.crisis_panel import CrisisPanel
from state.chat import ChatStore
from tests.tui_support import StreamingBackend, make_app, text_of, wait_for

pytestmark = pytest.mark.anyio

SMOL, GEMMA = "smollm2-135m-instruct", "gemma3-270m"
LEFT_REPLY = "Left says: that sounds heavy, one small step could help today."
RIGHT_REPLY = "Right says: a short walk after lunch might ease the week."


async def until(condition, timeout: float = 300) -> None:
    """Plain sleeps until ``condition()``: `pilot.press` and `pilot.pause` give up on a screen whose
    queue waited 30 s, as the chat's does while it loads the crisis net on a heavily loaded machine."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


async def open_chat(pilot) -> ChatScreen:
    """The chat, once it has loaded the crisis net and warmed its model (`ChatScreen.warmed`)."""
    app = pilot.app
    app.switch_mode("chat")
    await until(lambda: isinstance(app.screen, ChatScreen) and app.screen.warmed and not app.screen.workers)
    return app.screen


def two_model_app(tmp_path, left: StreamingBackend, right: StreamingBackend):
    """The real app whose chat models are two scripted streams, one per bundled name."""
    app = make_app(tmp_path, chat_backend=left)
    app.make_chat_backend = {SMOL: left, GEMMA: right}.__getitem__
    return app


async def open_side_by_side(pilot, second: str = GEMMA) -> SideBySideScreen:
    """From the chat: ctrl+y, choose the second model in the picker, land on the side-by-side screen."""
    app = pilot.app
    await open_chat(pilot)
    await pilot.press("ctrl+y")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
    options = app.screen.query_one("#models", OptionList)
    options.focus()
    options.highlighted = [options.get_option_at_index(i).id for i in range(options.option_count)].index(second)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, SideBySideScreen))
    screen = app.screen
    await wait_for(pilot, lambda: not screen.workers, timeout=240)  # both models warmed
    return screen


async def say(pilot, screen: SideBySideScreen, text: str) -> None:
    box = screen.query_one("#pair-input", Input)
    box.value = text
    await box.action_submit()
    await pilot.pause()


def replies(screen: SideBySideScreen) -> list[str]:
    """The reply each column is showing (its newest), left then right."""
    out = []
    for column in screen.query(ChatColumn):
        said = column.query(AssistantSaid)
        out.append(said.last().source if said else "")
    return out


async def test_one_message_streams_into_both_columns_at_once_and_each_keeps_its_own_history(tmp_path):
    left = StreamingBackend(LEFT_REPLY, gap_s=0.005, pause_after="heavy")
    right = StreamingBackend(RIGHT_REPLY, gap_s=0.005, pause_after="walk")
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        assert [c.model for c in screen.query(ChatColumn)] == [SMOL, GEMMA]
        await say(pilot, screen, "Work is a lot and I sleep badly.")
        # Both replies are visible while both are still being written: neither waited for the other.
        await wait_for(pilot, lambda: "heavy" in replies(screen)[0] and "walk" in replies(screen)[1])
        assert screen.generating
        assert "today." not in replies(screen)[0] and "week." not in replies(screen)[1]
        left.resume()
        right.resume()
        await wait_for(pilot, lambda: not screen.generating)
        assert "help today." in replies(screen)[0] and "ease the week." in replies(screen)[1]
        for column in screen.query(ChatColumn):
            assert [text_of(w) for w in column.query(YouSaid)] == ["You\nWork is a lot and I sleep badly."]
        # Each model was sent the person's words, in its own conversation's prompt.
        assert left.prompts[-1][-1].content == right.prompts[-1][-1].content == "Work is a lot and I sleep badly."
        first, second = screen.pair.conversations
        assert "2 turn" not in text_of(screen.query_one("#pair-status"))
        await say(pilot, screen, "And my sister keeps calling.")
        await wait_for(pilot, lambda: not screen.generating and len(first.messages) == 4 == len(second.messages))
        # The second turn's prompt is that column's own history: its own model's earlier reply.
        assert [m.content for m in right.prompts[-1][1:]] == [
            "Work is a lot and I sleep badly.",
            RIGHT_REPLY,
            "And my sister keeps calling.",
        ]
    store = ChatStore(tmp_path / "chats")
    saved = {c.model: c for c in (store.load(first.id), store.load(second.id))}
    assert saved[SMOL].pair == saved[GEMMA].id and saved[GEMMA].pair == saved[SMOL].id
    for model, reply in ((SMOL, LEFT_REPLY), (GEMMA, RIGHT_REPLY)):
        messages = saved[model].messages
        assert [(m.role, m.model) for m in messages] == [("user", model), ("assistant", model)] * 2
        assert messages[1].content == reply and "first token" in messages[1].meta["note"]


async def test_esc_stops_both_replies_keeps_what_each_wrote_and_esc_again_leaves(tmp_path):
    left = StreamingBackend(LEFT_REPLY, pause_after="heavy")
    right = StreamingBackend(RIGHT_REPLY, pause_after="walk")
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_side_by_side(pilot)
        await say(pilot, screen, "Tell me a lot.")
        await wait_for(pilot, lambda: "heavy" in replies(screen)[0] and "walk" in replies(screen)[1])
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating and not screen.workers)
        assert app.screen is screen  # the first esc stops; it does not leave
        for conversation, full in zip(screen.pair.conversations, (LEFT_REPLY, RIGHT_REPLY), strict=True):
            reply = conversation.messages[-1]
            assert reply.role == "assistant" and reply.meta["note"] == "stopped"
            assert reply.content and reply.content != full and full.startswith(reply.content)
            assert reply.model == conversation.model
        notes = [text_of(n) for n in screen.query("TurnNote")]
        assert notes == [f"{SMOL} · stopped", f"{GEMMA} · stopped"]
        failures = [n.message for n in app._notifications if "failed" in n.message.lower()]
        assert not failures
        # The stop was for that turn only: the next message is answered in full by both.
        left.pause_after = right.pause_after = None
        await say(pilot, screen, "Something shorter?")
        await wait_for(pilot, lambda: not screen.generating and len(screen.pair.conversations[1].messages) == 4)
        assert [c.messages[-1].content for c in screen.pair.conversations] == [LEFT_REPLY, RIGHT_REPLY]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))


async def test_a_column_whose_model_finishes_first_is_saved_and_says_so_while_the_other_writes(tmp_path):
    left = StreamingBackend(LEFT_REPLY)
    right = StreamingBackend(RIGHT_REPLY, pause_after="walk")
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        await say(pilot, screen, "Work is a lot.")
        first_column = screen.query(ChatColumn).first()
        await wait_for(pilot, lambda: first_column.query("TurnNote"))
        assert screen.generating and "week." not in replies(screen)[1]
        assert text_of(first_column.query_one("TurnNote")).startswith(f"{SMOL} · first token")
        first, second = screen.pair.conversations
        assert ChatStore(tmp_path / "chats").load(first.id).messages[-1].content == LEFT_REPLY
        right.resume()
        await wait_for(pilot, lambda: not screen.generating)
        assert len(screen.query("TurnNote")) == 2 and second.messages[-1].content == RIGHT_REPLY


async def test_the_crisis_net_reads_the_message_once_shows_the_lines_and_steers_both(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_COUNTRY", "GB")
    checked: list[str] = []
    original = SafetyNet.check

    def counting(self, text, *args, **kwargs):
        checked.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(SafetyNet, "check", counting)
    left, right = _NotingThePanel(LEFT_REPLY), _NotingThePanel(RIGHT_REPLY)
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        assert not screen.query_one(CrisisPanel).shown
        left.screen = right.screen = screen
        message = "i took a bunch of pills an hour ago"
        await say(pilot, screen, message)
        await wait_for(pilot, lambda: not screen.generating and len(screen.pair.conversations[1].messages) == 2)
        assert checked.count(message) == 1
        panel = screen.query_one(CrisisPanel)
        assert panel.shown and "116 123" in panel.text
        for backend in (left, right):
            prompt = backend.prompts[-1][-1].content
            assert prompt.startswith(message) and "Instruction for the assistant" in prompt
            assert "emergency" in prompt.lower()
        for conversation in screen.pair.conversations:
            said = conversation.messages[0]
            assert said.content == message and "attempt" in said.meta["crisis"]  # stored words, never the steer
        # The lines were on screen before either model was asked, not drawn with the first words.
        assert left.panel_when_asked == right.panel_when_asked == [True]


class _NotingThePanel(StreamingBackend):
    """A scripted stream that notes, each time its model is asked, whether the crisis panel is shown."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.screen: SideBySideScreen | None = None
        self.panel_when_asked: list[bool] = []

    async def stream(self, messages, **kwargs):
        if self.screen is not None:
            self.panel_when_asked.append(self.screen.query_one(CrisisPanel).shown)
        async for piece in super().stream(messages, **kwargs):
            yield piece


async def test_ctrl_y_on_either_conversation_of_a_pair_brings_the_pair_back(tmp_path):
    left, right = StreamingBackend(LEFT_REPLY), StreamingBackend(RIGHT_REPLY)
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        await say(pilot, screen, "First words.")
        await wait_for(pilot, lambda: not screen.generating and len(screen.pair.conversations[1].messages) == 2)
        ids = [c.id for c in screen.pair.conversations]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        listed = chat.query_one("#conversations", OptionList)
        assert set(ids) <= {listed.get_option_at_index(i).id for i in range(listed.option_count)}
        await chat.open(ids[1])  # the right-hand one, reopened alone in the single chat
        assert chat.model == GEMMA
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: isinstance(app.screen, SideBySideScreen))
        again = app.screen
        assert [c.id for c in again.pair.conversations] == [ids[1], ids[0]]
        await wait_for(pilot, lambda: len(again.query(AssistantSaid)) == 2)
        await say(pilot, again, "More words.")
        await wait_for(pilot, lambda: not again.generating and len(again.pair.conversations[0].messages) == 4)
    store = ChatStore(tmp_path / "chats")
    assert [len(store.load(i).messages) for i in ids] == [4, 4]


async def test_a_long_pair_keeps_its_last_turns_on_screen_and_every_turn_in_its_conversations(tmp_path, monkeypatch):
    """Reproduced: every turn stayed mounted, and each redraw laid out all of them: after twenty
    turns a streamed line cost the event loop five times what it did at the first."""
    from coach_tui.widgets import chat_column

    monkeypatch.setattr(chat_column, "SHOWN_TURNS", 2)
    left, right = StreamingBackend(LEFT_REPLY), StreamingBackend(RIGHT_REPLY)
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        for n in range(3):
            await say(pilot, screen, f"Message {n}.")
            await wait_for(pilot, lambda n=n: not screen.generating and screen.pair.conversations[1].turns == n + 1)
        await wait_for(pilot, lambda: len(screen.query(YouSaid)) == 4)  # two turns in each column
        for column in screen.query(ChatColumn):
            said = [text_of(w) for w in column.query(YouSaid)]
            assert said == ["You\nMessage 1.", "You\nMessage 2."]
            assert text_of(column.query_one(chat_column.EarlierTurns)).startswith("1 earlier turn ")
        assert all(c.turns == 3 and len(c.messages) == 6 for c in screen.pair.conversations)
        ids = [c.id for c in screen.pair.conversations]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        await app.screen.open(ids[0])
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: isinstance(app.screen, SideBySideScreen))
        again = app.screen
        await wait_for(pilot, lambda: len(again.query(YouSaid)) == 4)
        assert "1 earlier turn" in text_of(again.query(chat_column.EarlierTurns).first())


class BrokenBackend(StreamingBackend):
    async def stream(self, messages, *, max_tokens=512, temperature=0.7, seed=None):
        self.prompts.append(list(messages))
        raise BackendError("chat", "the model file is damaged")
        yield ""  # an async generator, like every backend's stream


async def test_one_model_failing_does_not_stop_the_other(tmp_path):
    left, right = StreamingBackend(LEFT_REPLY), BrokenBackend()
    app = two_model_app(tmp_path, left, right)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_side_by_side(pilot)
        await say(pilot, screen, "Hello both.")
        await wait_for(pilot, lambda: not screen.generating)
        first, second = screen.pair.conversations
        assert first.messages[-1].content == LEFT_REPLY
        assert [m.role for m in second.messages] == ["user"]
        broken = screen.query(ChatColumn).last().query_one(AssistantSaid)
        assert broken.has_class("-error") and "damaged" in broken.source


@pytest.mark.slow
async def test_side_by_side_with_the_two_bundled_models(tmp_path):
    """The real thing: SmolLM2 and Gemma 3 270M answer one message at once, each stored with its name."""
    from actors.chat.engine import chat_backend

    app = make_app(tmp_path)
    app.make_chat_backend = chat_backend
    async with app.run_test(size=(120, 30)) as pilot:
        chat = await open_chat(pilot)
        chat.conversation.settings = {"max_tokens": 12, "temperature": 0.0}  # the pair takes the chat's settings
        screen = await open_side_by_side(pilot)
        await say(pilot, screen, "I keep putting off a hard email at work.")
        await wait_for(pilot, lambda: not screen.generating, timeout=240)
        for conversation, model in zip(screen.pair.conversations, (SMOL, GEMMA), strict=True):
            assert conversation.model == model
            reply = conversation.messages[-1]
            assert reply.role == "assistant" and reply.content.strip(), (model, reply)
            assert reply.model == model and "first token" in reply.meta["note"]
        assert all(replies(screen))
    store = ChatStore(tmp_path / "chats")
    for conversation in screen.pair.conversations:
        assert store.load(conversation.id).messages[-1].model == conversation.model


def test_the_crisis_net_keeps_no_parse_trees_for_the_garbage_collector_to_walk(tmp_path):
    """Reproduced: the lexicon kept every pattern's parsed tree after indexing it, about 470,000
    small objects that each full garbage collection walked: pauses of 0.5–0.9 s of the event loop
    while two replies streamed side by side (and in the monitor). The index needs them only once."""
    import gc
    import types

    from actors.safety import load_safety_net

    net = load_safety_net(make_app(tmp_path).pack)
    lexicon = net.lexicon
    seen: set[int] = set()
    stack: list[object] = [(lexicon.patterns, lexicon.distress, lexicon.followup)]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(item))
        stack.extend(r for r in gc.get_referents(item) if gc.is_tracked(r))
    assert len(seen) < 100_000, f"{len(seen):,} objects held by the crisis net's patterns"
    assert net.check("i took a bunch of pills an hour ago").flagged  # the index still finds what it must
