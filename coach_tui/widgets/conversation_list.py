"""Your conversations, most recent first; pick one to carry on where you left off."""

from __future__ import annotations

import contextlib

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from state.chat import ConversationSummary


class ConversationList(OptionList):
    DEFAULT_CSS = "ConversationList { height: 1fr; border: none; }"
    BINDINGS = [Binding("delete", "delete", "Delete")]

    class Delete(Message):
        def __init__(self, conversation_id: str) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def show(self, conversations: list[ConversationSummary], current: str | None) -> None:
        self.clear_options()
        for c in conversations:
            when = c.updated_at[:16].replace("T", " ")
            self.add_option(Option(Content.assemble(c.title, (f"\n{when} · {c.turns} turns", "dim")), id=c.id))
        if current is not None:
            with contextlib.suppress(OptionDoesNotExist):  # a new conversation is not listed until saved
                self.highlighted = self.get_option_index(current)

    def action_delete(self) -> None:
        if self.highlighted is not None:
            option = self.get_option_at_index(self.highlighted)
            if option.id:
                self.post_message(self.Delete(option.id))
