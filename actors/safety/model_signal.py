"""The optional `safety` role: a configured model asked one yes/no question about a message.

A larger model reads indirect phrasings the offline layers may miss, so a
pack's user who has one configured can add it. It only ever *adds* signals:
it cannot clear a message the offline layers flagged, and when it is slow,
unreachable or answers out of schema it adds nothing and says nothing (the
offline verdict already stands). The question is the pack's text
(``model_prompt`` in safety.yaml), not a string in this code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from string import Template
from typing import Any

from .verdict import SafetySignal

MAX_HISTORY = 3


def answer_schema(categories: Sequence[str]) -> dict[str, Any]:
    """The JSON the model must give: the verdict first, so a small model decides before it rambles."""
    return {
        "type": "object",
        "properties": {
            "crisis": {"type": "boolean"},
            "category": {"type": "string", "enum": [*categories, "none"]},
        },
        "required": ["crisis", "category"],
        "additionalProperties": False,
    }


def model_messages(prompt: str, text: str, history: Sequence[str], categories: Sequence[str]) -> list:
    from actors.backends.types import Message

    system = Template(prompt).safe_substitute(categories=", ".join(categories))
    earlier = [h for h in history if h.strip()][-MAX_HISTORY:]
    body = {"earlier_messages": earlier, "message": text}
    return [Message(role="system", content=system), Message(role="user", content=json.dumps(body, ensure_ascii=False))]


async def model_signals(
    backend: Any, text: str, history: Sequence[str], categories: Sequence[str], *, prompt: str | None = None
) -> list[SafetySignal]:
    """What the `safety` model adds for this message: one signal, or none.

    ``backend`` is anything with the backends' ``complete(messages, schema=…)``
    (a `Backend`); ``prompt`` defaults to the bundled pack's question.
    """
    from actors.backends.errors import BackendError

    if prompt is None:
        from .loader import load_safety_net

        prompt = load_safety_net(None).config.model_prompt
    messages = model_messages(prompt, text, history, categories)
    try:
        reply = await backend.complete(
            messages, schema=answer_schema(categories), max_tokens=48, temperature=0.0, seed=0
        )
    except BackendError:
        return []
    data = reply.data if reply.ok else None
    if not isinstance(data, dict) or data.get("crisis") is not True:
        return []
    category = data.get("category")
    if category not in categories:
        return []
    return [SafetySignal(category, "model", f"{getattr(backend, 'name', 'model')} said crisis: {category}", 1.0)]
