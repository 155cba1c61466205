"""Curation: fix what can be fixed, truncate what cannot, reject the rest, and say why.

The spec's order, per transcript:

1. Artifacts (character breaks, meta-commentary, truncated or empty replies …)
   are rewritten first by the `fixup` role. A rewrite that is UNFIXABLE,
   still has a structural artifact, or breaks continuity (the entailment
   check, a separate `judge` call, says the user's next message no longer
   follows) is not applied: the transcript is cut before that exchange when
   at least `min_exchanges` remain, and rejected otherwise.
2. The rubric assessment follows (the assessor actor). A safety-gate failure
   rejects at once, with no fixup. Other failures send the exchanges the
   judge cited to the same fixup-and-entailment loop, once; the transcript is
   then assessed again and rejected if it still fails.

In `review` mode nothing is applied automatically: every proposal waits,
with its checks, for a person (`actors.curation.review`), and the transcript parks in
`review` until all its proposals are decided.

Every attempt at an exchange is a step with a key (`state.steps`): the trim
or the rewrite of an artifact, the rewrite for one criterion. A resumed
curator finds an attempt already stored and takes its decision as made, so
no reply is rewritten twice and no model is asked twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from state import pipeline as db
from state.status import TranscriptStatus
from state.store import Store

from ..backends.types import Message
from ..events import DecisionMade, EventBus, FixupProposed, TranscriptRejected
from ..generation.conversation import Turn, render_history
from ..pack.loader import DomainPack
from ..pack.prompts import render
from .artifacts import (
    DEFAULT_NAMES,
    STRUCTURAL_KINDS,
    Finding,
    detect_artifacts,
    transcript_artifacts,
    trim_cut_off_tail,
)

ReviewMode = Literal["auto", "review"]
FixOutcome = Literal["applied", "failed", "pending"]

ENTAILMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["YES", "NO"]},
        "reasoning": {"type": "string", "maxLength": 300},
    },
    "required": ["answer", "reasoning"],
}
_CITED = re.compile(r"\b(?:exchange|turn|reply|response)s?\s*#?\s*(\d+)(?:\s*(?:-|–|to|and)\s*(\d+))?", re.I)


@dataclass
class CurationSettings:
    review_mode: ReviewMode = "auto"
    min_exchanges: int = 10
    """Fewest exchanges a truncated transcript may keep (the spec's 10)."""
    fixup_max_tokens: int = 700
    history_exchanges: int = 3
    """Earlier exchanges shown to the fixup role for context."""
    max_rubric_fixups: int = 8


def cited_exchanges(reasoning: str, exchange_count: int) -> list[int]:
    """Exchange numbers a judge's reasoning points at ("turn 3", "exchanges 4–6"), in order, deduplicated."""
    found: list[int] = []
    for m in _CITED.finditer(reasoning):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        for n in range(start, min(end, start + 10) + 1):
            if 1 <= n <= exchange_count and n not in found:
                found.append(n)
    return found


def describe_findings(findings: Sequence[Finding]) -> str:
    return "; ".join(f"{f.kind}: {f.detail} (“{f.text.strip()[:80]}”)" for f in findings)


def plan_cut(number: int, *, min_exchanges: int, stage: str, reason_kind: str, reason: str) -> db.Cut:
    """The spec's rule for an exchange that cannot be fixed: keep the exchanges before it if at least
    `min_exchanges` remain, else reject the transcript."""
    keep = number - 1
    if keep >= min_exchanges:
        return db.Cut(keep=keep, reject=False, stage=stage, reason_kind=reason_kind, reason=reason)
    return db.Cut(
        keep=keep,
        reject=True,
        stage=stage,
        reason_kind=reason_kind,
        reason=reason,
        detail=f"unfixable at exchange {number}; only {keep} exchanges would remain (minimum {min_exchanges})",
    )


def replayed_outcome(decision: str) -> FixOutcome:
    """What a fixup already stored means for a curator that meets it again after a resume."""
    if decision == "pending":
        return "pending"
    return "applied" if decision == "accepted" else "failed"


def cut_or_reject(
    store: Store,
    run_id: str | None,
    transcript_id: str,
    number: int,
    *,
    min_exchanges: int,
    stage: str,
    reason_kind: str,
    reason: str,
) -> str:
    """Cut before `number` or reject (`plan_cut`), once however often it is replayed.

    Returns the transcript's next status: `assessing` (the cut transcript is
    judged again) or `rejected`.
    """
    cut = plan_cut(number, min_exchanges=min_exchanges, stage=stage, reason_kind=reason_kind, reason=reason)
    action = db.apply_cut(store, run_id, transcript_id, cut)
    return TranscriptStatus.REJECTED if action == "rejected" else TranscriptStatus.ASSESSING


class Curator:
    """Runs the fixup loops for one run's transcripts; the supervisor decides when."""

    def __init__(
        self,
        store: Store,
        router,
        pack: DomainPack,
        *,
        run_id: str | None,
        bus: EventBus,
        settings: CurationSettings | None = None,
        names: Sequence[str] = DEFAULT_NAMES,
    ) -> None:
        self.store = store
        self.router = router
        self.pack = pack
        self.run_id = run_id
        self.bus = bus
        self.settings = settings or CurationSettings()
        self.names = tuple(names)

    # --- one exchange -------------------------------------------------------------------------

    async def fix_exchange(
        self,
        transcript_id: str,
        turns: list[Turn],
        number: int,
        *,
        reason_kind: str,
        reason: str,
        issue: str,
        reasoning: str,
        rewrite: str | None = None,
        step: str = "",
    ) -> FixOutcome:
        """Check a rewrite of reply `number` (the fixup role's unless one is given); apply, queue or refuse it.

        `step` names the attempt (default `<reason_kind>:<reason>`); an attempt
        already stored is not made again, and its stored decision stands.
        """
        step = step or f"{reason_kind}:{reason}"
        stored = db.fixup_at(self.store, transcript_id, number, step)
        if stored is not None:
            return replayed_outcome(stored.decision)
        turn = turns[number - 1]
        next_user = turns[number].user if number < len(turns) else None
        if rewrite is None:
            rewrite = await self._rewrite(turns, number, issue=issue, reasoning=reasoning)
        proposed: str | None = rewrite
        ok: bool | None = None
        why = ""
        if not rewrite or rewrite.upper().startswith("UNFIXABLE"):
            proposed, ok, why = None, False, "the fixup role answered UNFIXABLE"
        else:
            leftover = [
                f for f in detect_artifacts(rewrite, user=turn.user, names=self.names) if f.kind in STRUCTURAL_KINDS
            ]
            if leftover:
                ok, why = False, "the rewrite still has artifacts: " + describe_findings(leftover)
            elif next_user is None:
                ok, why = True, "last exchange: there is no next message to follow"
            else:
                ok, why = await self._entails(turn.user, rewrite, next_user)

        review = self.settings.review_mode == "review" and proposed is not None
        if review:
            decision = "pending"
        else:
            decision = "accepted" if ok else ("unfixable" if proposed is None else "rejected")
        # An automatic decision commits with the proposal (and an accepted rewrite with both).
        fixup_id = db.save_fixup(
            self.store,
            self.run_id,
            transcript_id,
            exchange_number=number,
            step=step,
            reason_kind=reason_kind,
            reason=reason,
            reasoning=reasoning,
            original=turn.assistant,
            proposed=proposed,
            entailment_ok=ok,
            entailment_reasoning=why,
            decision=decision,
            decided_by="" if review else "auto",
        )
        self.bus.publish(
            FixupProposed(
                run_id=self.run_id,
                transcript_id=transcript_id,
                fixup_id=fixup_id,
                exchange=number,
                reason=reason,
                entailment_ok=ok,
            )
        )
        if review:
            return "pending"
        self.bus.publish(
            DecisionMade(
                run_id=self.run_id, transcript_id=transcript_id, fixup_id=fixup_id, decision=decision, by="auto"
            )
        )
        if ok:
            turns[number - 1] = Turn(turn.user, proposed)
            return "applied"
        return "failed"

    async def _rewrite(self, turns: list[Turn], number: int, *, issue: str, reasoning: str) -> str:
        turn = turns[number - 1]
        next_user = turns[number].user if number < len(turns) else None
        history = turns[max(0, number - 1 - self.settings.history_exchanges) : number - 1]
        prompt = render(
            self.pack.prompts["fixup"],
            issue=issue,
            reasoning=reasoning or "(none given)",
            history=render_history(history, you=self.pack.manifest.user_label, coach=self.pack.manifest.assistant_label)
            if history
            else "(this is the first exchange)",
            user_message=turn.user,
            original=turn.assistant,
            next_user_message=next_user or "(none: this is the last exchange of the conversation)",
        )
        reply = await self.router.ask(
            "fixup",
            [Message(role="user", content=prompt)],
            max_tokens=self.settings.fixup_max_tokens,
            temperature=0.3,
            seed=number,
        )
        return reply.text.strip()

    async def _entails(self, user_message: str, rewrite: str, next_user: str) -> tuple[bool, str]:
        prompt = render(
            self.pack.prompts["entailment"], user_message=user_message, rewrite=rewrite, next_user_message=next_user
        )
        judge = self.router.backends_for("judge")[0]
        reply = await self.router.ask(
            "judge",
            [Message(role="user", content=prompt)],
            schema=ENTAILMENT_SCHEMA,
            max_tokens=200,
            temperature=0.0,
            seed=0,
            backend=judge.name,
        )
        if not reply.ok or reply.data is None:
            return False, f"unparsable entailment answer (counts as NO): {reply.structured_error}"
        return reply.data.get("answer") == "YES", str(reply.data.get("reasoning", "")).strip()

    # --- what a failed fix means for the transcript ---------------------------------------------

    def cut_or_reject(self, transcript_id: str, number: int, *, stage: str, reason_kind: str, reason: str) -> str:
        status = cut_or_reject(
            self.store,
            self.run_id,
            transcript_id,
            number,
            min_exchanges=self.settings.min_exchanges,
            stage=stage,
            reason_kind=reason_kind,
            reason=reason,
        )
        self.bus.publish(
            TranscriptRejected(
                run_id=self.run_id,
                transcript_id=transcript_id,
                action="truncated" if status != TranscriptStatus.REJECTED else "rejected",
                reason=reason,
            )
        )
        return status

    # --- the two stages --------------------------------------------------------------------------

    async def artifact_stage(self, transcript_id: str, turns: list[Turn]) -> str:
        """Returns the transcript's next status: assessing, review or rejected."""
        findings = transcript_artifacts(
            [_Numbered(i + 1, t.user, t.assistant) for i, t in enumerate(turns)], names=self.names
        )
        pending = False
        for number in sorted(findings):
            found = findings[number]
            kinds = sorted({f.kind for f in found})
            issue = "generation artifact — " + describe_findings(found)
            outcome = "failed"
            trimmed = trim_cut_off_tail(turns[number - 1].assistant) if kinds == ["truncated"] else None
            if trimmed:  # cut off at the token limit: first try keeping it up to its last full sentence
                outcome = await self.fix_exchange(
                    transcript_id,
                    turns,
                    number,
                    reason_kind="artifact",
                    reason="truncated",
                    issue=issue,
                    reasoning="Detected automatically: "
                    + describe_findings(found)
                    + "; proposed: the reply up to its last complete sentence",
                    rewrite=trimmed,
                    step="artifact:trim",
                )
            if outcome == "failed":
                outcome = await self.fix_exchange(
                    transcript_id,
                    turns,
                    number,
                    reason_kind="artifact",
                    reason=",".join(kinds),
                    issue=issue,
                    reasoning="Detected automatically: " + describe_findings(found),
                    step="artifact:rewrite",
                )
            if outcome == "pending":
                pending = True
            elif outcome == "failed" and any(k in STRUCTURAL_KINDS for k in kinds):
                status = self.cut_or_reject(
                    transcript_id,
                    number,
                    stage="artifact",
                    reason_kind="artifact",
                    reason=",".join(k for k in kinds if k in STRUCTURAL_KINDS),
                )
                del turns[number - 1 :]
                return status
        return TranscriptStatus.REVIEW if pending else TranscriptStatus.ASSESSING

    async def rubric_stage(self, transcript_id: str, turns: list[Turn], failed: dict[str, str]) -> str:
        """Fix the exchanges the judge cited for each failed criterion (criterion -> reasoning)."""
        rubric = self.pack.rubric
        targets: list[tuple[str, int, str]] = []
        for cid, reasoning in failed.items():
            for number in cited_exchanges(reasoning, len(turns)):
                targets.append((cid, number, reasoning))
        targets = targets[: self.settings.max_rubric_fixups]
        if not targets:
            db.record_rejection(
                self.store,
                self.run_id,
                transcript_id,
                stage="fixup",
                action="rejected",
                reason_kind="criterion",
                reason=",".join(failed),
                detail="the judge's reasoning names no exchange to rewrite",
                kept_exchanges=len(turns),
            )
            return TranscriptStatus.REJECTED
        pending = False
        for cid, number, reasoning in sorted(targets, key=lambda t: t[1]):
            if number > len(turns):
                continue  # cut away by an earlier truncation
            c = rubric.criterion(cid)
            outcome = await self.fix_exchange(
                transcript_id,
                turns,
                number,
                reason_kind="criterion",
                reason=cid,
                issue=f"{cid} {c.name}: {c.fail_when.strip()}",
                reasoning=reasoning,
            )
            if outcome == "pending":
                pending = True
            elif outcome == "failed":
                status = self.cut_or_reject(transcript_id, number, stage="fixup", reason_kind="criterion", reason=cid)
                del turns[number - 1 :]
                if status == TranscriptStatus.REJECTED:
                    return status
        return TranscriptStatus.REVIEW if pending else TranscriptStatus.ASSESSING


@dataclass(frozen=True)
class _Numbered:
    number: int
    user: str
    assistant: str
