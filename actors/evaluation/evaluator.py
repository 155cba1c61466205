"""The evaluator: how an evaluation run differs from a generation run, asked by the supervisor at each fork.

A generation run makes training data: its assistant follows the pack's
generation guidance, its transcripts are curated, fixed once and rejected
with a reason. An evaluation measures a model as deployed, so the model
under test (`eval_target`) sees the bare system prompt, and its transcripts
are judged whole, as they were answered: no curation, no fixups, and a
rejection is the model's result rather than a loss to explain.

The supervisor drives both with the same workers; it asks its course (this,
or `actors.supervisor.CuratedRun`) instead of testing for evaluation mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.status import TranscriptStatus as Status

from ..backends.types import Message
from ..generation.conversation import Turn, deployed_messages
from ..pack.loader import DomainPack


class Evaluator:
    """The course of an evaluation run: straight from conversation to judgement, and nothing mended."""

    records_rejections = False
    """A rejected transcript gets no rejection row: nothing was cut or refused, the model failed the rubric."""

    def after_generation(self) -> tuple[Status, str]:
        """A complete conversation goes to the assessor as it is: no artifact fixups, no truncation."""
        return Status.ASSESSING, "assessor"

    def assistant_prompt(self, pack: DomainPack, turns: Sequence[Turn], user_message: str) -> tuple[str, list[Message]]:
        """The model under test answers with the pack's system prompt alone, as deployed."""
        return "eval_target", deployed_messages(pack, turns, user_message)

    def after_failed_assessment(self, *, judged_unsafe: bool, after_fixup: bool) -> Status:
        """Any failed assessment rejects: an evaluation never fixes what it measures."""
        return Status.REJECTED
