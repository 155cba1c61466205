"""Offline chat history: one JSON file per conversation in the user's private data folder.

Why not the workspace database: a workspace holds *synthetic* pipeline data
and may be shared, copied or committed; a person's own self-care chat must
never travel with it. So conversations live under the user's data folder
(``platformdirs.user_data_dir("coach")/chats``, or ``$COACH_CHAT_DIR``), the
folder is 0700 and every file 0600, written whole or not at all (temporary
file in the same folder, fsync, rename), and nothing here ever touches the
network.

Why JSON files: a conversation is read and written whole, by one app at a
time; a file per conversation makes "delete this conversation" a real delete
and keeps one corrupt file from costing the others.

The file's format grows by adding keys, never by renaming them: format 2
(``"format": 2``) added the model of each message, the conversation's own
settings (system prompt, temperature, reply length, context length), and a
title the person chose. A format-1 file (the previous release's, no
``format`` key) reads as it always did: its messages keep their words, times
and notes, their model is unknown (""), and the conversation's ``model`` is
still the one to reopen it with. Keys a later format adds are ignored.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CHAT_DIR_ENV = "COACH_CHAT_DIR"
FORMAT = 2
"""The conversation file's format (see the module docstring); files without the key are format 1."""
SETTINGS_FILE = "settings.json"
DIR_MODE = 0o700
FILE_MODE = 0o600


def default_chat_dir() -> Path:
    """``$COACH_CHAT_DIR`` when set, else the platform's per-user data folder."""
    override = os.environ.get(CHAT_DIR_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("coach", appauthor=False)) / "chats"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")  # orders saves made within a second


@dataclass
class ChatMessage:
    """One turn. ``meta`` keeps what the UI showed beside it (timings, crisis signals).

    ``model`` is the model the message was sent to (a person's message) or that wrote it (a
    reply): a bundled name, a GGUF path or ``server:NAME``; "" when unknown (format-1 files).
    """

    role: str  # user | assistant
    content: str
    at: str = field(default_factory=_now)
    meta: dict = field(default_factory=dict)
    model: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> ChatMessage:
        """Tolerant of files from other formats: missing keys take their defaults, unknown ones are ignored."""
        return cls(
            role=str(data["role"]),
            content=str(data.get("content", "")),
            at=str(data.get("at") or _now()),
            meta=dict(data.get("meta") or {}),
            model=str(data.get("model") or ""),
        )


SETTING_KEYS = ("system_prompt", "temperature", "max_tokens", "context_length")
"""A conversation's own settings; a key left out means the default (the pack's prompt, the engine's values)."""


def user_turns(messages: list[ChatMessage] | list[dict]) -> int:
    """Turns of a conversation: the messages the person sent (a reply that failed or was never
    written does not halve the count, as ``len(messages) // 2`` did)."""
    return sum(1 for m in messages if (m.get("role") if isinstance(m, dict) else m.role) == "user")


@dataclass
class Conversation:
    id: str
    title: str = "New conversation"
    model: str = ""
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    messages: list[ChatMessage] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    """This conversation's own settings (`SETTING_KEYS`); empty means every default."""
    titled: bool = False
    """The person named it (a rename); the first message no longer sets the title."""
    pair: str = ""
    """The id of the conversation held side by side with this one (the same messages sent to another
    model, `actors.chat.pair`); "" for a conversation of its own."""

    def add(self, role: str, content: str, *, model: str | None = None, **meta) -> ChatMessage:
        """Append a message; ``model`` defaults to the conversation's model (the one it belongs to)."""
        message = ChatMessage(role, content, meta=meta, model=self.model if model is None else model)
        self.messages.append(message)
        self.updated_at = message.at
        if role == "user" and self.title == "New conversation" and not self.titled:
            self.title = _title_from(content)
        return message

    @property
    def turns(self) -> int:
        return user_turns(self.messages)

    def rename(self, title: str) -> None:
        """The person's own title (blank: back to the first message's words)."""
        title = " ".join(title.split())
        if title:
            self.title, self.titled = title[:120], True
        else:
            first = next((m.content for m in self.messages if m.role == "user"), "")
            self.title, self.titled = (_title_from(first) if first else "New conversation"), False

    def to_dict(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        messages = [ChatMessage.from_dict(m) for m in data.get("messages", [])]
        settings = data.get("settings")
        return cls(
            id=data["id"],
            title=data.get("title", "New conversation"),
            model=data.get("model", "") or "",
            created_at=data.get("created_at", _now()),
            updated_at=data.get("updated_at", _now()),
            messages=messages,
            settings={k: v for k, v in settings.items() if k in SETTING_KEYS} if isinstance(settings, dict) else {},
            titled=bool(data.get("titled", False)),
            pair=str(data.get("pair") or ""),
        )


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: str
    turns: int
    model: str = ""


@dataclass(frozen=True)
class SearchHit:
    """A conversation that holds every word searched for, and where the first one shows."""

    summary: ConversationSummary
    snippet: str
    """A short stretch of the matching message (or the title), one line."""


def search_terms(query: str) -> list[str]:
    return [t.casefold() for t in query.split() if t.strip()]


def match_snippet(texts: list[str], terms: list[str], width: int = 60) -> str | None:
    """A one-line stretch around the first term in ``texts`` when every term occurs in them; else None.

    Case-insensitive and word-order free: "sleep sister" finds a conversation that speaks of both,
    in any of its messages or its title. Pure, for the store's search and its tests.
    """
    if not terms:
        return None
    folded = [t.casefold() for t in texts]
    everything = "\n".join(folded)
    if not all(term in everything for term in terms):
        return None
    for text, low in zip(texts, folded, strict=True):
        at = low.find(terms[0])
        if at >= 0:
            start = max(0, at - width // 3)
            piece = " ".join(text[start : start + width].split())
            return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")
    return ""


def _title_from(text: str, limit: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class ChatStore:
    """Conversations on disk, private to the user (see the module docstring)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_chat_dir()

    def _ensure_dir(self) -> None:
        if not self.root.parent.exists():  # e.g. ~/.local/share/coach: private too when we make it
            self.root.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        if stat.S_IMODE(self.root.stat().st_mode) != DIR_MODE:
            self.root.chmod(DIR_MODE)

    def _path(self, conversation_id: str) -> Path:
        if not conversation_id.replace("-", "").isalnum():
            raise ValueError(f"not a conversation id: {conversation_id!r}")
        return self.root / f"{conversation_id}.json"

    def new(self, model: str = "") -> Conversation:
        """A fresh conversation (not written until it has a message)."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return Conversation(id=f"{stamp}-{secrets.token_hex(3)}", model=model)

    def save(self, conversation: Conversation) -> Path:
        """Write the whole conversation atomically with mode 0600."""
        path = self._path(conversation.id)
        self._write_json(path, conversation.to_dict())
        return path

    def _write_json(self, path: Path, data: dict) -> None:
        """Whole or not at all: a private temporary file in the same folder, fsync, rename."""
        self._ensure_dir()
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load(self, conversation_id: str) -> Conversation:
        with self._path(conversation_id).open(encoding="utf-8") as fh:
            return Conversation.from_dict(json.load(fh))

    def list(self) -> list[ConversationSummary]:
        """Every readable conversation, most recently used first; unreadable files are skipped."""
        out = []
        for path in self._files():
            data = self._read(path)
            if data is not None:
                out.append(self._summary(data, path))
        return sorted(out, key=lambda c: (c.updated_at, c.id), reverse=True)

    def _files(self) -> list:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.glob("*.json") if p.name != SETTINGS_FILE]

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or "id" not in data or not isinstance(data.get("messages", []), list):
            return None
        return data

    @staticmethod
    def _summary(data: dict, path: Path) -> ConversationSummary:
        messages = [m for m in data.get("messages", []) if isinstance(m, dict)]
        return ConversationSummary(
            str(data["id"]),
            str(data.get("title", path.stem)),
            str(data.get("updated_at", "")),
            user_turns(messages),
            str(data.get("model") or ""),
        )

    def search(self, query: str) -> list[SearchHit]:
        """Conversations holding every word of ``query`` (titles and messages, any case), newest first.

        Reads each file in turn: a person's history is hundreds of small files, read in milliseconds,
        and an index would be one more private file to keep in step.
        """
        terms = search_terms(query)
        hits = []
        for path in self._files():
            data = self._read(path)
            if data is None:
                continue
            texts = [str(data.get("title", ""))] + [
                str(m.get("content", "")) for m in data.get("messages", []) if isinstance(m, dict)
            ]
            snippet = match_snippet(texts[1:] + texts[:1], terms)
            if snippet is not None:
                hits.append(SearchHit(self._summary(data, path), snippet))
        return sorted(hits, key=lambda h: (h.summary.updated_at, h.summary.id), reverse=True)

    def rename(self, conversation_id: str, title: str) -> Conversation:
        """Give a saved conversation the person's own title (blank: the first message's words again)."""
        conversation = self.load(conversation_id)
        conversation.rename(title)
        self.save(conversation)
        return conversation

    def delete(self, conversation_id: str) -> None:
        self._path(conversation_id).unlink(missing_ok=True)

    # --- the person's chat settings (private like the conversations) ---------------------

    @property
    def _settings_path(self) -> Path:
        return self.root / SETTINGS_FILE

    def settings(self) -> dict:
        """The saved chat settings (e.g. ``country`` for support lines); empty when none or unreadable."""
        try:
            data = json.loads(self._settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_settings(self, **changes) -> dict:
        """Merge ``changes`` into the settings and write them whole, 0600, like a conversation."""
        data = {**self.settings(), **changes}
        self._write_json(self._settings_path, data)
        return data
