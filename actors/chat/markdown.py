"""A conversation as a Markdown file the person asked for: readable anywhere, private like the history.

Why the file is 0600 even in the workspace: it holds the person's own words,
exported by them on purpose, and a workspace may be shared; the folder it
lands in is theirs to move it from. The name carries the date and the title
so several exports sort and read well; the same conversation exported again
overwrites its own file (whole or not at all: temporary file, fsync, rename).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from state.chat import FILE_MODE, Conversation
from state.errors import CoachError

from .chat_format import describe_model

EXPORT_FOLDER = Path("exports") / "chats"
"""Where, under the workspace, exported conversations go."""


def _when(stamp: str) -> str:
    return stamp[:16].replace("T", " ") if stamp else "?"


def conversation_markdown(
    conversation: Conversation, *, user_label: str = "You", assistant_label: str = "Coach"
) -> str:
    """The conversation as Markdown: title, facts, then each message under its speaker, model and time.

    A change of model between messages is written where it happened, as in the app's log.
    """
    models = list(dict.fromkeys(m.model for m in conversation.messages if m.model))
    lines = [
        f"# {conversation.title}",
        "",
        f"- started: {_when(conversation.created_at)} UTC; last message: {_when(conversation.updated_at)} UTC",
        f"- model{'s' if len(models) > 1 else ''}: {', '.join(describe_model(m) for m in models) or 'unknown'}",
        f"- turns: {conversation.turns}",
    ]
    if conversation.settings.get("system_prompt"):
        lines += [
            "",
            "System prompt:",
            "",
            *(f"> {line}" for line in conversation.settings["system_prompt"].splitlines()),
        ]
    previous = ""
    for message in conversation.messages:
        if message.model and previous and message.model != previous:
            lines += ["", f"*Model changed: {describe_model(previous)} → {describe_model(message.model)}*"]
        previous = message.model or previous
        who = user_label if message.role == "user" else assistant_label
        lines += ["", f"## {who} · {_when(message.at)}", "", message.content]
        note = message.meta.get("note")
        if message.role == "assistant" and note:
            lines += ["", f"*{note}*"]
    return "\n".join(lines) + "\n"


def export_file_name(conversation: Conversation) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", conversation.title.casefold()).strip("-")[:40] or "conversation"
    return f"{conversation.created_at[:10] or 'chat'}-{slug}-{conversation.id[-6:]}.md"


def export_markdown(conversation: Conversation, workspace: Path, **labels: str) -> Path:
    """Write the conversation under ``workspace/exports/chats``, 0600; returns the file's path."""
    folder = Path(workspace) / EXPORT_FOLDER
    path = folder / export_file_name(conversation)
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(conversation_markdown(conversation, **labels))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise CoachError(f"could not write {path}: {err.strerror or err}") from None
    return path
