"""Where a transcript is in the pipeline, and the only moves it may make.

The status column is what a resume plans from, so a wrong move is not a
cosmetic slip: a `passed` transcript sent back to `review` would be judged
and paid for again, a `rejected` one could reach a training set. Every write
of a status goes through `check_transition`, which refuses a move the table
below does not list, naming the transcript and both statuses.

A truncated transcript has no status of its own: the cut is a `Rejection`
row with action `truncated`, and the transcript goes on to `assessing`.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import CoachError


class TranscriptStatus(StrEnum):
    PLANNED = "planned"
    """Planned with a persona seed; the persona actor enriches it next."""
    GENERATING = "generating"
    """Simulator and assistant take turns until the target length."""
    CURATING = "curating"
    """Artifact fixups, truncation."""
    ASSESSING = "assessing"
    """The judges ask every due criterion."""
    FIXING = "fixing"
    """Rubric fixups of the exchanges the judges cited, once."""
    REVIEW = "review"
    """Fixups wait for a person's decisions (review mode)."""
    PASSED = "passed"
    REJECTED = "rejected"
    FAILED = "failed"
    """A step raised (a backend kept failing); a resume retries from where the data stops."""
    IMPORTED = "imported"
    """Brought in with `coach data import`, outside any run."""


S = TranscriptStatus

TERMINAL: frozenset[TranscriptStatus] = frozenset({S.PASSED, S.REJECTED})
"""Statuses a run never touches again. `failed` is retried by a resume; `review` waits for a person."""

WAITING: frozenset[TranscriptStatus] = frozenset({S.REVIEW})
"""Statuses a run leaves alone until a person acts."""

DONE_FOR_NOW: frozenset[TranscriptStatus] = TERMINAL | WAITING | {S.FAILED}
"""Nothing more happens to these in this pass of a run."""

WORKING: frozenset[TranscriptStatus] = frozenset({S.PLANNED, S.GENERATING, S.CURATING, S.ASSESSING, S.FIXING})
"""Statuses some actor of a live run still has work for."""

TRANSITIONS: dict[TranscriptStatus, frozenset[TranscriptStatus]] = {
    S.PLANNED: frozenset({S.GENERATING, S.FAILED}),
    S.GENERATING: frozenset({S.CURATING, S.ASSESSING, S.FAILED}),  # assessing: an evaluation skips curation
    S.CURATING: frozenset({S.ASSESSING, S.REVIEW, S.REJECTED, S.FAILED}),
    S.ASSESSING: frozenset({S.PASSED, S.REJECTED, S.FIXING, S.FAILED}),
    S.FIXING: frozenset({S.ASSESSING, S.REVIEW, S.REJECTED, S.FAILED}),
    S.REVIEW: frozenset({S.ASSESSING, S.REJECTED, S.FAILED}),  # failed: a step that raised after parking it
    # A resume picks a failed transcript up wherever its data stops.
    S.FAILED: frozenset({S.GENERATING, S.CURATING, S.ASSESSING, S.FIXING}),
    S.PASSED: frozenset(),
    S.REJECTED: frozenset(),
    S.IMPORTED: frozenset(),
}
"""Every move the pipeline makes. Staying put is always allowed (a replayed step writes the same status)."""


class InvalidTransition(CoachError):
    """A status write the pipeline never makes: a bug, or two writers disagreeing about a transcript."""


def parse_status(value: str, *, where: str = "status") -> TranscriptStatus:
    """A status from text (a stored row, a command-line option), or one clear error listing the valid ones."""
    try:
        return TranscriptStatus(value)
    except ValueError:
        valid = ", ".join(s.value for s in TranscriptStatus)
        raise CoachError(f"{where}: {value!r} is not a transcript status (one of: {valid})") from None


def check_transition(transcript_id: str, old: str, new: str) -> TranscriptStatus:
    """The new status if `old -> new` is a move the pipeline makes; otherwise `InvalidTransition`."""
    old_s = parse_status(old, where=f"transcript {transcript_id}")
    new_s = parse_status(new, where=f"transcript {transcript_id}")
    if old_s != new_s and new_s not in TRANSITIONS[old_s]:
        allowed = ", ".join(sorted(TRANSITIONS[old_s])) or "none: it is final"
        raise InvalidTransition(
            f"transcript {transcript_id} cannot go from {old_s} to {new_s} (allowed from {old_s}: {allowed})"
        )
    return new_s
