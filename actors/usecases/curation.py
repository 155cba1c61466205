"""The human side of curation: the fixups waiting for a person, their decisions, and what curation did.

`coach review --list/--show/--accept/--reject`, the Review screen and
`coach report curation` are faces of these functions. A decision is
committed the moment it is made and the pipeline's rule applied at once
(`actors.curation.review`); a transcript with no undecided fixup left is back to
`assessing`, which `Decision.judge_again` tells the face so it can have it
judged (the app at once, the CLI on the next `coach run --resume`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from actors.curation.curator import CurationSettings
from actors.curation.review import FixupContext, decide_fixup, fixup_context
from state import pipeline as db
from state.models import Fixup
from state.status import TranscriptStatus
from state.store import Store

from .run_settings import from_stored

__all__ = [
    "DECISION_FILTERS",
    "CurationReport",
    "Decision",
    "FixupContext",
    "curation_report",
    "decide",
    "fixup_detail",
    "fixup_reasons",
    "list_fixups",
    "pending_count",
]

DECISION_FILTERS = ("pending", "accepted", "rejected", "unfixable", "all")
"""What a face may filter fixups by; "all" is no filter."""

JUDGED_REASONS = ("criterion", "safety_gate")


@dataclass(frozen=True)
class Decision:
    fixup_id: int
    transcript_id: str
    accepted: bool
    status: str
    """The transcript's status after the decision: assessing, rejected, or still review."""

    @property
    def judge_again(self) -> bool:
        return self.status == TranscriptStatus.ASSESSING


@dataclass
class CurationReport:
    """Counts of what curation did, most frequent first."""

    rejections: list[tuple[tuple[str, str, str, str], int]] = field(default_factory=list)
    """((action, stage, reason kind, reason), count)"""
    decisions: list[tuple[tuple[str, str], int]] = field(default_factory=list)
    """((reason kind, decision), count), in that order."""
    failing_criteria: list[tuple[str, int]] = field(default_factory=list)
    """Criteria behind rejections and truncations by the judge, most common first."""

    @property
    def empty(self) -> bool:
        return not self.rejections and not self.decisions


def list_fixups(store: Store, *, decision: str = "pending", criterion: str | None = None) -> list[Fixup]:
    """Fixups with this decision ("all" for any) and, if given, this criterion or artifact kind, oldest first."""
    return db.fixups(store, decision=None if decision == "all" else decision, reason=criterion)


def pending_count(store: Store) -> int:
    return len(db.fixups(store, decision="pending"))


def fixup_reasons(store: Store) -> list[str]:
    """Every criterion and artifact kind any fixup so far was proposed for, sorted."""
    return sorted({f.reason for f in db.fixups(store)})


def fixup_detail(store: Store, fixup_id: int) -> FixupContext:
    """The fixup with the user message it answered and the user's next one (raises CoachError if unknown)."""
    return fixup_context(store, fixup_id)


def _curation_settings(store: Store, transcript_id: str) -> CurationSettings:
    """The curation settings of the transcript's run, as it was started (by either face); defaults otherwise."""
    transcript = db.transcript(store, transcript_id)
    run = db.get_run(store, transcript.run_id) if transcript is not None and transcript.run_id else None
    if run is None or run.kind != "generate":
        return CurationSettings()
    return from_stored(run.config, seed=run.seed, domain=run.domain, run_id=run.id).curation()


def decide(store: Store, fixup_id: int, accept: bool, *, by: str = "human") -> Decision:
    """Record a person's decision and apply the pipeline's rule with the run's own settings.

    A rejection cuts the transcript before the fixup's exchange only if the
    run's minimum number of exchanges remains, the rule its curation applied
    in auto mode. Raises CoachError for an unknown or already decided fixup.
    """
    transcript_id = fixup_context(store, fixup_id).fixup.transcript_id
    status = decide_fixup(store, fixup_id, accept, by=by, settings=_curation_settings(store, transcript_id))
    return Decision(fixup_id, transcript_id, accept, status)


def curation_report(store: Store, run_id: str | None = None) -> CurationReport:
    """Rejections and truncations by stage and reason, and fixup decisions, for one run or the whole workspace."""
    rows = db.rejections(store, run_id)
    fixes = db.fixups(store)
    if run_id is not None:
        of_run = {t.id for t in db.run_transcripts(store, run_id)}
        fixes = [f for f in fixes if f.transcript_id in of_run]
    by_reason = Counter((r.action, r.stage, r.reason_kind, r.reason) for r in rows)
    criteria = Counter(reason for r in rows if r.reason_kind in JUDGED_REASONS for reason in r.reason.split(","))
    return CurationReport(
        rejections=sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])),
        decisions=sorted(Counter((f.reason_kind, f.decision) for f in fixes).items()),
        failing_criteria=criteria.most_common(),
    )
