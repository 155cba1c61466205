"""Human review of fixups: list what waits, show its context, record a decision and act on it.

A decision is committed the moment it is made, with everything it implies
in the same transaction. Accepting puts the rewrite into the conversation
(the original stays in the fixup row); rejecting cuts the transcript before
that exchange, or rejects it when too little would remain — the same rule
the automatic mode applies. When a transcript has no undecided fixups left it
goes back to `assessing`, and the next pass of the supervisor (a live run, or
`coach run --resume`) judges it again. A fixup is decided once.
"""

from __future__ import annotations

from dataclasses import dataclass

from state import pipeline as db
from state.errors import CoachError
from state.models import Fixup
from state.store import Store

from .curator import CurationSettings, plan_cut


@dataclass(frozen=True)
class FixupContext:
    fixup: Fixup
    user_message: str
    next_user_message: str | None
    transcript_status: str


def pending_fixups(store: Store, *, criterion: str | None = None) -> list[Fixup]:
    return db.fixups(store, decision="pending", reason=criterion)


def fixup_context(store: Store, fixup_id: int) -> FixupContext:
    f = _get(store, fixup_id)
    rows = {e.number: e for e in db.exchanges(store, f.transcript_id)}
    here = rows.get(f.exchange_number)
    following = rows.get(f.exchange_number + 1)
    return FixupContext(
        fixup=f,
        user_message=here.user if here else "",
        next_user_message=following.user if following else None,
        transcript_status=db.transcript(store, f.transcript_id).status,
    )


def _get(store: Store, fixup_id: int) -> Fixup:
    found = db.fixup(store, fixup_id)
    if found is None:
        raise CoachError(f"no fixup {fixup_id} in this workspace (see `coach review --list`)")
    return found


def decide_fixup(
    store: Store, fixup_id: int, accept: bool, *, by: str = "human", settings: CurationSettings | None = None
) -> str:
    """Record a person's decision and apply the pipeline's rule; returns the transcript's new status."""
    settings = settings or CurationSettings()
    f = _get(store, fixup_id)
    if f.decision != "pending":
        raise CoachError(f"fixup {fixup_id} was already decided ({f.decision})")
    if accept and f.proposed is None:
        raise CoachError(f"fixup {fixup_id} has no rewrite to accept (the fixup role answered UNFIXABLE)")
    cut = (
        None
        if accept
        else plan_cut(
            f.exchange_number,
            min_exchanges=settings.min_exchanges,
            stage="review",
            reason_kind="human",
            reason=f"rejected fixup of {f.reason}",
        )
    )
    return db.decide_fixup(store, fixup_id, accept, by=by, cut=cut)
