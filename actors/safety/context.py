"""The context layer: a message harmless alone, dangerous after what came before.

"I have them all here" means nothing by itself and everything after "I want
it to stop". The lexicon lists, per language, *follow-ups* (ambiguous alone:
having the means at hand, "tonight's the night", "it's ready") and *distress*
(earlier messages that make a follow-up urgent). A follow-up fires this layer
when one of the last few user messages shows distress or would itself have
raised the panel; after a benign history it does not. Pure: the caller hands
in the already-normalised messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .lexicon import Hit, Lexicon


@dataclass(frozen=True)
class ContextHit:
    category: str
    language: str
    evidence: str


def context_hits(
    lexicon: Lexicon,
    current: Sequence[str],
    history: Callable[[], Sequence[Sequence[str]]],
    earlier_flagged: Callable[[Sequence[str]], bool],
) -> list[ContextHit]:
    """Follow-up hits in ``current`` (its segments), kept only when the history shows distress.

    ``history()`` gives the segments of the last few earlier user messages,
    oldest first; it is only called when ``current`` holds a follow-up.
    ``earlier_flagged`` says whether an earlier message raises the panel alone.
    """
    if not len(lexicon.followup):
        return []
    followups: list[Hit] = lexicon.followup.hits(current, lexicon.negation)
    if not followups:
        return []
    for earlier in reversed(history()):
        distress = lexicon.distress.hits(earlier, lexicon.negation)
        if distress or earlier_flagged(earlier):
            cause = distress[0].evidence if distress else "an earlier message raised the panel"
            return [ContextHit(h.category, h.language, f"{h.evidence!r} after {cause!r}") for h in followups]
    return []
