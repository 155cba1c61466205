"""Command-palette providers for things that are data, not fixed actions: runs and conversations.

Fixed actions (switch screen, new run, pause, stop …) come from
`CoachApp.get_system_commands`; these two list what the workspace and the
chat folder hold, so "resume run-42…" or "open conversation: sleep" is a
few keystrokes from anywhere.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from state.run_index import recent_runs


class RunsProvider(Provider):
    async def startup(self) -> None:
        self.runs = [(r.id, r.status) for r in recent_runs(self.app.store, "generate", limit=50)]

    def _commands(self):
        for run_id, status in self.runs:
            yield f"View run {run_id} ({status})", partial(self.app.view_run, run_id), "show it in the monitor"
            yield (
                f"Resume run {run_id} ({status})",
                partial(self.app.resume_run, run_id),
                "continue its unfinished transcripts",
            )

    async def discover(self) -> Hits:
        for text, callback, help_text in list(self._commands())[:6]:
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


class ConversationsProvider(Provider):
    async def startup(self) -> None:
        self.conversations = self.app.chat_store.list()

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in self.conversations:
            text = f"Open conversation: {c.title}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(self.app.open_conversation, c.id),
                    help=f"{c.turns} turns · {c.updated_at[:16].replace('T', ' ')}",
                )
