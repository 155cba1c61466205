"""Building the prompts of the exchange loop: what the simulator and the assistant see.

Pure functions over the pack, the persona and the history. The simulator
gets its instructions and the history as one prompt (it speaks *as* the
user, so the assistant's turns are quoted to it); the assistant gets the system
prompt plus the pack's generation guidance as its system message and the
history as real chat turns, so the backend's context rule can trim the
oldest turns of a very long conversation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..backends.types import Message
from ..pack.loader import DomainPack
from ..pack.prompts import render
from .personas import PersonaSeed


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str


def describe_persona(seed: PersonaSeed, enriched: dict) -> str:
    """The persona as the simulator reads it: who they are, then what is on their mind."""
    lines = []
    for key, label in (
        ("name", "Name"),
        ("age_range", "Age"),
        ("attachment_style", "Attachment style"),
        ("life_context", "Life context"),
        ("voice", "Voice"),
    ):
        if enriched.get(key):
            lines.append(f"{label}: {enriched[key]}")
    if enriched.get("personality_traits"):
        lines.append("Traits: " + ", ".join(map(str, enriched["personality_traits"])))
    lines.append(f"Overall difficulty: {seed.difficulty}")
    lines.append("What is on their mind (introduce these over the conversation, not all at once):")
    for t in seed.topic_seeds:
        lines.append(f"- {t.topic} / {t.subtopic} ({t.complexity}): {t.description}")
    return "\n".join(lines)


def describe_flaws(seed: PersonaSeed) -> str:
    if not seed.flaws:
        return "None in particular: write as a fairly clear communicator."
    return "\n".join(f"- {f.name} ({f.family}): {f.description} How: {f.simulate}" for f in seed.flaws)


def session_note(transcript_seed: str, exchange_number: int, assistant: str = "assistant") -> str:
    """Whether a 'next session' gap precedes this message; seeded so a resumed run decides the same."""
    if exchange_number == 1:
        return "This is the first message of the first session."
    rng = random.Random(f"gap:{transcript_seed}:{exchange_number}")
    if rng.random() < 0.18:
        days = rng.choice(["a couple of days", "about a week", "a few days", "two weeks"])
        return f"A new session: {days} have passed since your last message. Things happened in between."
    return f"Same session: you are replying straight after the {assistant}'s last message."


def render_history(turns: Sequence[Turn], *, you: str = "You", coach: str = "Assistant") -> str:
    if not turns:
        return "(nothing yet: this is your first message)"
    parts = []
    for i, t in enumerate(turns, 1):
        parts.append(f"[{i}] {you}: {t.user}\n[{i}] {coach}: {t.assistant}")
    return "\n\n".join(parts)


def fit_recent(turns: Sequence[Turn], fits: Callable[[Sequence[Turn]], bool]) -> tuple[list[Turn], int]:
    """The longest recent suffix of `turns` for which `fits` holds, and how many were left out."""
    kept = list(turns)
    while kept and not fits(kept):
        kept.pop(0)
    return kept, len(turns) - len(kept)


def user_sim_messages(
    pack: DomainPack,
    seed: PersonaSeed,
    enriched: dict,
    turns: Sequence[Turn],
    *,
    transcript_seed: str,
    target_exchanges: int,
    omitted: int = 0,
) -> list[Message]:
    number = len(turns) + omitted + 1
    tpm = pack.input_taxonomy.topics_per_message
    history = render_history(turns, coach=pack.manifest.assistant_label)
    if omitted:
        history = f"({omitted} earlier exchanges are not shown.)\n\n" + history
    prompt = render(
        pack.prompts["user_sim"],
        persona=describe_persona(seed, enriched),
        flaws=describe_flaws(seed),
        style=seed.style,
        style_words=f"{seed.style_words[0]}–{seed.style_words[1]}",
        topics_per_message=f"{tpm.min}–{tpm.max}",
        exchange_number=number,
        target_exchanges=target_exchanges,
        session_note=session_note(transcript_seed, number, pack.manifest.assistant_label.lower()),
        history=history,
    )
    return [Message(role="user", content=prompt)]


def chat_messages(system: str, turns: Sequence[Turn], user_message: str) -> list[Message]:
    messages = [Message(role="system", content=system)]
    for t in turns:
        messages += [Message(role="user", content=t.user), Message(role="assistant", content=t.assistant)]
    messages.append(Message(role="user", content=user_message))
    return messages


def assistant_messages(pack: DomainPack, turns: Sequence[Turn], user_message: str) -> list[Message]:
    """What the generating assistant sees: the system prompt plus the pack's generation guidance."""
    return chat_messages(assistant_system(pack.prompts["assistant"], pack.system_prompt), turns, user_message)


@lru_cache(maxsize=16)
def assistant_system(template: str, system_prompt: str) -> str:
    """The generating assistant's system message, rendered once per pack: it is the same for every
    reply of a run, and rendering it (several KB through the template's pattern) was a visible share
    of an exchange's CPU at 32 in flight. Keyed by the texts, so an edited pack renders anew."""
    return render(template, system_prompt=system_prompt)


def deployed_messages(pack: DomainPack, turns: Sequence[Turn], user_message: str) -> list[Message]:
    """What a deployed model sees: the pack's system prompt alone, then the conversation.

    Evaluation uses this, not the generation guidance, so a model is judged
    the way a person would meet it.
    """
    return chat_messages(pack.system_prompt, turns, user_message)


def clean_user_message(text: str) -> str:
    """Strip what small models wrap around a message: quotes, a speaker label, whitespace."""
    out = text.strip()
    for label in ("User:", "You:", "Me:", "Message:"):
        if out.startswith(label):
            out = out[len(label) :].strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'“":
        out = out[1:-1].strip()
    return out
