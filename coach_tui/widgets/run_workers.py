"""Who works a shared run: workers per host, and the transcripts each holds now.

A run worked by `coach worker` processes has no one owner to show; this
pane says how many workers each host has on it and what each is holding,
so a person can see a host drop out (its workers go "left") and its
transcripts move to the others. Hidden for a run no worker has joined.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from actors.usecases.workers import HostWorkers

SHOWN_IDS = 4
"""Transcript ids listed per worker; the rest are counted."""


def render_workers(hosts: Sequence[HostWorkers]) -> Text:
    text = Text()
    total = sum(len(h.workers) for h in hosts)
    live = sum(h.live for h in hosts)
    text.append(f"workers: {live} live of {total}, on {len(hosts)} host(s)\n", style="bold")
    for host in hosts:
        text.append(f"{host.host}", style="bold")
        text.append(f"  {host.live} live / {len(host.workers)}\n", style="dim")
        for w in host.workers:
            ids = ", ".join(w.transcripts[:SHOWN_IDS]) + (
                f" +{len(w.transcripts) - SHOWN_IDS}" if len(w.transcripts) > SHOWN_IDS else ""
            )
            state = ("● ", "green") if w.live else ("✗ ", "dim")
            text.append(f"  {state[0]}", style=state[1])
            text.append(f"pid {w.pid}: ")
            text.append(ids or ("idle" if w.live else "left"), style="" if ids else "dim")
            text.append("\n")
    return text


class RunWorkers(Static):
    DEFAULT_CSS = "RunWorkers { height: auto; padding: 0 1; } RunWorkers.-empty { display: none; }"

    def on_mount(self) -> None:
        self.add_class("-empty")

    def show(self, hosts: Sequence[HostWorkers]) -> None:
        self.set_class(not hosts, "-empty")
        if hosts:
            self.update(render_workers(hosts))
