"""An `Input` that applies its own editing keys in the order they were typed.

Why: Textual's `Input` inserts a printable character the moment the key
reaches it, but a bound key (backspace, delete, arrows, home, end…) first
bubbles up through every container to the app, which then runs the binding.
Typed quickly, the next character overtakes the backspace: "3", backspace,
"5" gives "35" after the backspace deletes the 5 instead of the 3 (the
character typed right after a deletion is dropped). Textual issue #6605
(open). Here the widget runs its own non-priority bindings as the key
arrives, exactly as the app would have, so every key takes effect in order.
Priority bindings (ctrl+s on a form) are run by the app before the key
reaches the widget, as before.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority and await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()  # handled: neither Input's own handler nor the app runs it again
                    return
        # Printable keys: Textual calls `Input._on_key` next (handlers run down the class hierarchy).
