"""The human side of curation: the fixups waiting for a person, their decisions, and what curation did.

`coach review --list/--show/--accept/--reject`, the Review screen and
`coach report curation` are faces of these functions. A decision is
committed the moment it is made and the pipeline's rule applied at once
(`actors.curation.review`); a transcript with no undecided fixup left is back to
`assessing`, which `Decision.judge_again` tells the face so it can have it
judged (the app when the person leaves Review, the CLI on the next `coach run --resume`).

A rejection is never a surprise: `rejection_preview` says, before anything is
written, whether rejecting cuts the transcript (and where) or rejects it whole
because fewer than the run's minimum exchanges would remain. And a person's
decision can be taken back with `undo` until the transcript is judged again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from actors.curation.curator import CurationSettings, plan_cut
from actors.curation.review import FixupContext, decide_fixup, fixup_context
from state import pipeline as db
from state.models import Fixup
from state.review_undo import CannotUndo, undo_decision
from state.status import TranscriptStatus
from state.store import Store

from .run_settings import from_stored

__all__ = [
    "DECISION_FILTERS",
    "CannotUndo",
    "CurationReport",
    "Decision",
    "FixupContext",
    "RejectionPreview",
    "curation_report",
    "decide",
    "fixup_detail",
    "fixup_reasons",
    "lengths_always_rejected",
    "list_fixups",
    "pending_count",
    "rejection_preview",
    "transcript_runs",
    "undo",
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


@dataclass(frozen=True)
class RejectionPreview:
    """What rejecting a fixup will do, worked out with the run's own settings before anything is written."""

    fixup_id: int
    transcript_id: str
    run_id: str | None
    exchange_number: int
    exchanges: int
    """How many exchanges the transcript holds now."""
    keep: int
    """Exchanges left after the cut (those before the fixup's exchange)."""
    min_exchanges: int
    rejects_transcript: bool
    """True when fewer than `min_exchanges` would remain: the whole transcript is rejected."""

    def sentence(self) -> str:
        """One plain sentence for a confirmation: the consequence, and why."""
        if self.rejects_transcript:
            kept = f"only {self.keep} exchange{'s' if self.keep != 1 else ''}"
            return (
                f"Cutting before exchange {self.exchange_number} would leave {kept}, fewer than this run's "
                f"minimum of {self.min_exchanges}: the whole transcript ({self.exchanges} exchanges) is rejected."
            )
        return (
            f"The transcript is cut at exchange {self.exchange_number}: exchanges 1–{self.keep} of "
            f"{self.exchanges} are kept (this run's minimum is {self.min_exchanges})."
        )


def rejection_preview(store: Store, fixup_id: int) -> RejectionPreview:
    """What `decide(..., accept=False)` would do to this fixup's transcript (raises CoachError if unknown)."""
    f = fixup_context(store, fixup_id).fixup
    settings = _curation_settings(store, f.transcript_id)
    cut = plan_cut(f.exchange_number, min_exchanges=settings.min_exchanges, stage="review", reason_kind="", reason="")
    transcript = db.transcript(store, f.transcript_id)
    return RejectionPreview(
        fixup_id=f.id,
        transcript_id=f.transcript_id,
        run_id=transcript.run_id if transcript is not None else None,
        exchange_number=f.exchange_number,
        exchanges=len(db.exchanges(store, f.transcript_id)),
        keep=cut.keep,
        min_exchanges=settings.min_exchanges,
        rejects_transcript=cut.reject,
    )


def undo(store: Store, fixup_id: int) -> Decision:
    """Take back a person's decision: the fixup is pending again and its transcript back in review.

    Raises `CannotUndo` (a CoachError) saying why when the transcript has
    moved on: judged again, or decided again since.
    """
    transcript_id = fixup_context(store, fixup_id).fixup.transcript_id
    status = undo_decision(store, fixup_id)
    return Decision(fixup_id, transcript_id, False, status)


def transcript_runs(store: Store, transcript_ids: list[str] | set[str]) -> dict[str, str | None]:
    """The run of each transcript (None for an imported one): transcript ids like `t0000` repeat across runs."""
    out: dict[str, str | None] = {}
    for tid in transcript_ids:
        t = db.transcript(store, tid)
        out[tid] = t.run_id if t is not None else None
    return out


def lengths_always_rejected(lengths: dict[str, int], min_exchanges: int) -> list[str]:
    """Length classes too short to cut: any rejected fixup in them rejects the whole transcript.

    A cut keeps the exchanges before the rejected one, at most `length - 1`;
    when that is below `min_exchanges`, the curation rule rejects instead.
    """
    return [name for name, length in lengths.items() if length - 1 < min_exchanges]


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
