"""The private chat history's file format: the previous release's files open intact, messages record
their model, and conversations can be searched, renamed and counted right. Plain files, no app."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from state.chat import FORMAT, ChatStore, Conversation, match_snippet, user_turns

# Written by the previous release's `ChatStore.save` (format 1: no "format" key, no model per message).
PREVIOUS_RELEASE = {
    "id": "20261201-101500-a1b2c3",
    "title": "Work is a lot and I sleep badly.",
    "model": "gemma3-270m",
    "created_at": "2026-12-01T10:15:00.000001+00:00",
    "updated_at": "2026-12-01T10:19:00.000001+00:00",
    "messages": [
        {
            "role": "user",
            "content": "Work is a lot and I sleep badly.",
            "at": "2026-12-01T10:15:00.1+00:00",
            "meta": {},
        },
        {
            "role": "assistant",
            "content": "That sounds heavy.",
            "at": "2026-12-01T10:15:03.1+00:00",
            "meta": {"note": "first token 0.21s · 5 tokens · 40 tok/s"},
        },
        {
            "role": "user",
            "content": "i dont see the point of going on anymore",
            "at": "2026-12-01T10:17:00.1+00:00",
            "meta": {"crisis": ["suicidal_ideation"], "crisis_layers": ["lexicon"]},
        },
        {"role": "assistant", "content": "I'm glad you told me.", "at": "2026-12-01T10:17:04.1+00:00", "meta": {}},
        {"role": "user", "content": "My sister called again.", "at": "2026-12-01T10:19:00.1+00:00", "meta": {}},
    ],
}


def previous_release_history(root: Path) -> Path:
    root.mkdir(mode=0o700)
    path = root / f"{PREVIOUS_RELEASE['id']}.json"
    path.write_text(json.dumps(PREVIOUS_RELEASE, ensure_ascii=False, indent=1), encoding="utf-8")
    path.chmod(0o600)
    (root / "settings.json").write_text('{"country": "GB"}', encoding="utf-8")
    return path


def test_a_previous_release_history_opens_with_every_message_and_its_model(tmp_path):
    store = ChatStore(tmp_path / "chats")
    previous_release_history(store.root)
    [summary] = store.list()
    assert summary.title == "Work is a lot and I sleep badly." and summary.model == "gemma3-270m"
    conversation = store.load(summary.id)
    assert [(m.role, m.content, m.at, m.meta) for m in conversation.messages] == [
        (m["role"], m["content"], m["at"], m["meta"]) for m in PREVIOUS_RELEASE["messages"]
    ]
    assert conversation.model == "gemma3-270m"  # the model to reopen it with
    assert all(m.model == "" for m in conversation.messages)  # not recorded then: unknown, never guessed
    assert store.settings() == {"country": "GB"}
    # Saved again, it is format 2 and still holds everything it held.
    conversation.add("assistant", "Tell me more.", note="n")
    store.save(conversation)
    data = json.loads((store.root / f"{summary.id}.json").read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["messages"][:5] == [
        {**m, "model": ""} for m in PREVIOUS_RELEASE["messages"]
    ]
    assert data["messages"][5]["model"] == "gemma3-270m"


def test_keys_a_later_format_adds_are_ignored(tmp_path):
    store = ChatStore(tmp_path / "chats")
    later = {**PREVIOUS_RELEASE, "format": 9, "pinned": True}
    later["messages"] = [{**m, "tokens": 12} for m in PREVIOUS_RELEASE["messages"]]
    store.root.mkdir()
    (store.root / f"{later['id']}.json").write_text(json.dumps(later), encoding="utf-8")
    assert len(store.load(later["id"]).messages) == 5


def test_every_message_records_its_model_and_the_conversation_keeps_its_own(tmp_path):
    store = ChatStore(tmp_path / "chats")
    conversation = store.new(model="smollm2-135m-instruct")
    conversation.add("user", "hello")
    conversation.add("assistant", "hi", model="smollm2-135m-instruct", note="x")
    conversation.model = "/models/coach.Q4_K_M.gguf"
    conversation.add("user", "and now?")
    conversation.settings = {"temperature": 0.2, "system_prompt": "Be brief."}
    path = store.save(conversation)
    again = store.load(conversation.id)
    assert [m.model for m in again.messages] == ["smollm2-135m-instruct"] * 2 + ["/models/coach.Q4_K_M.gguf"]
    assert again.model == "/models/coach.Q4_K_M.gguf"
    assert again.settings == {"temperature": 0.2, "system_prompt": "Be brief."}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_turns_count_the_persons_messages(tmp_path):
    """A reply that failed or was never written no longer halves the count (5 messages, 3 turns)."""
    store = ChatStore(tmp_path / "chats")
    previous_release_history(store.root)
    [summary] = store.list()
    assert summary.turns == 3 == store.load(summary.id).turns
    assert user_turns([{"role": "user"}, {"role": "user"}]) == 2


def test_search_finds_every_word_in_any_message_or_title_any_case(tmp_path):
    store = ChatStore(tmp_path / "chats")
    first = store.new()
    first.add("user", "My Sister called about the move.")
    first.add("assistant", "How did that leave you?")
    store.save(first)
    second = store.new()
    second.add("user", "I sleep badly since the move.")
    second.rename("Nights")
    store.save(second)
    assert [h.summary.id for h in store.search("move")] == [second.id, first.id]
    [hit] = store.search("sister MOVE")
    assert hit.summary.id == first.id and "Sister" in hit.snippet
    assert [h.summary.id for h in store.search("nights sleep")] == [second.id]
    assert store.search("holiday") == [] and store.search("  ") == []


def test_match_snippet_needs_every_term():
    assert match_snippet(["a long day at work", "my sister"], ["sister", "work"]) == "my sister"
    assert match_snippet(["a long day at work"], ["sister", "work"]) is None


def test_rename_keeps_the_title_and_blank_gives_the_first_words_back(tmp_path):
    store = ChatStore(tmp_path / "chats")
    conversation = store.new()
    conversation.add("user", "Work is a lot and I sleep badly.")
    store.save(conversation)
    assert store.rename(conversation.id, "  Sleep   and work ").title == "Sleep and work"
    renamed = store.load(conversation.id)
    renamed.add("user", "another message")  # the first message sets a title only until a rename
    assert renamed.title == "Sleep and work"
    assert store.rename(conversation.id, "").title == "Work is a lot and I sleep badly."


def test_settings_of_a_conversation_ignore_unknown_keys():
    conversation = Conversation.from_dict({"id": "x", "settings": {"temperature": 0.1, "colour": "red"}})
    assert conversation.settings == {"temperature": 0.1}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": "nan"}, "temperature"),
        ({"max_tokens": "0"}, "max_tokens"),
        ({"context_length": "12.5"}, "context_length"),
    ],
)
def test_chat_settings_name_the_field_a_mistake_is_in(raw, field):
    from actors.chat.settings import parse_settings

    settings, problems = parse_settings(raw)
    assert list(problems) == [field] and field.replace("_", " ") in problems[field] and not settings


def test_chat_settings_blank_fields_mean_the_defaults():
    from actors.chat.settings import effective, parse_settings

    settings, problems = parse_settings(
        {"system_prompt": "  ", "temperature": "0.3", "max_tokens": "", "context_length": "4096"}
    )
    assert problems == {} and settings == {"temperature": 0.3, "context_length": 4096}
    engine = effective(settings, "PACK PROMPT")
    assert engine.system_prompt == "PACK PROMPT" and engine.temperature == 0.3 and engine.context_length == 4096
