"""Your conversations, most recent first; pick one to carry on where you left off."""

from __future__ import annotations

import contextlib

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from actors.chat.chat_format import describe_model
from state.chat import ConversationSummary


def describe_summary(c: ConversationSummary) -> str:
    """ "2026-12-03 14:05 · 4 turns · smollm2-135m-instruct": when, how long, on which model."""
    when = c.updated_at[:16].replace("T", " ")
    parts = [when, f"{c.turns} turn{'' if c.turns == 1 else 's'}"]
    if c.model:
        parts.append(describe_model(c.model))
    return " · ".join(parts)


class ConversationList(OptionList):
    DEFAULT_CSS = "ConversationList { height: 1fr; border: none; }"
    BINDINGS = [
        Binding("delete", "delete", "Delete", tooltip="delete the conversation (asks first)"),
        Binding("f2", "rename", "Rename", tooltip="rename the conversation"),
    ]

    class Delete(Message):
        """Asked to delete the highlighted conversation (the screen asks the person first)."""

        def __init__(self, conversation_id: str) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class Rename(Message):
        def __init__(self, conversation_id: str) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def show(self, conversations: list[ConversationSummary], current: str | None) -> None:
        self.clear_options()
        for c in conversations:
            self.add_option(Option(Content.assemble(c.title, (f"\n{describe_summary(c)}", "dim")), id=c.id))
        if current is not None:
            with contextlib.suppress(OptionDoesNotExist):  # a new conversation is not listed until saved
                self.highlighted = self.get_option_index(current)

    @property
    def highlighted_id(self) -> str | None:
        if self.highlighted is None:
            return None
        return self.get_option_at_index(self.highlighted).id

    def action_delete(self) -> None:
        if self.highlighted_id:
            self.post_message(self.Delete(self.highlighted_id))

    def action_rename(self) -> None:
        if self.highlighted_id:
            self.post_message(self.Rename(self.highlighted_id))
