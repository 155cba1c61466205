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
    """One turn. ``meta`` keeps what the UI showed beside it (timings, crisis signals)."""

    role: str  # user | assistant
    content: str
    at: str = field(default_factory=_now)
    meta: dict = field(default_factory=dict)


@dataclass
class Conversation:
    id: str
    title: str = "New conversation"
    model: str = ""
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    messages: list[ChatMessage] = field(default_factory=list)

    def add(self, role: str, content: str, **meta) -> ChatMessage:
        message = ChatMessage(role, content, meta=meta)
        self.messages.append(message)
        self.updated_at = message.at
        if role == "user" and self.title == "New conversation":
            self.title = _title_from(content)
        return message

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        messages = [ChatMessage(**m) for m in data.get("messages", [])]
        return cls(
            id=data["id"],
            title=data.get("title", "New conversation"),
            model=data.get("model", ""),
            created_at=data.get("created_at", _now()),
            updated_at=data.get("updated_at", _now()),
            messages=messages,
        )


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: str
    turns: int


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
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.glob("*.json"):
            if path.name == SETTINGS_FILE:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                out.append(
                    ConversationSummary(
                        data["id"],
                        data.get("title", path.stem),
                        data.get("updated_at", ""),
                        len(data.get("messages", [])) // 2,
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(out, key=lambda c: (c.updated_at, c.id), reverse=True)

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
