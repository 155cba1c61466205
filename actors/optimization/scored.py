"""One (candidate, persona) rollout as stored, and a candidate's stable name.

Apart from the adapter (which speaks GEPA's protocol) so that reading an
optimisation back — the app's screen, a benchmark, a resume — needs neither
GEPA nor any model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any


def candidate_key(candidate: dict[str, str]) -> str:
    """A candidate's stable name: the hash of its texts."""
    return hashlib.sha256(json.dumps(candidate, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Scored:
    """One rollout as stored: enough to score it again, explain it, and show it."""

    candidate: str
    persona: str
    score: float
    feedback: str
    failed: list[str]
    answers: dict[str, str]
    turns: list[list[str]]
    calls: int = 0
    judge_prompt_tokens: int = 0
    """Prompt tokens sent to the judge for this conversation, cached or not."""
    judge_evaluated_tokens: int = 0
    """Of them, the ones the judge had to evaluate (not served from a prefix cache): the judging's cost."""

    def payload(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Scored:
        """A stored rollout; keys a later coach added are ignored, ones an earlier one lacked take defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})
