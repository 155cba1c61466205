"""Datasets: transcripts in and out of the workspace, and slicing accepted ones into training examples.

`coach slice`, `coach import` and `coach export transcripts` are faces of
these functions.

Which assistant messages may be supervised: only transcripts whose status is
"passed" are read (what curation gives a passing or fixed-and-passing
transcript, and what an import with status "accepted" gives trusted data).
Their `Exchange` rows are the accepted version of the conversation — an
accepted fixup is written into those rows, the rejected original stays in the
`Fixup` table — so every assistant message of every example comes from an
accepted version. Two guards keep it so if curation is mid-flight: a
transcript with a fixup still awaiting review is skipped, and a recorded
truncation (`Rejection` with action "truncated") caps the exchanges used at
`kept_exchanges`.

Where the slices fall: the pack's `slicing.length_mix` (the therapy pack: the
spec's 20/50/25/5 % over 0-5K / 5-15K / 15-30K / 30K+ tokens) is approached by
planning the slice points over all accepted transcripts
(`actors.dataset.slicing.plan_mix`); the outcome says how close it came and,
where the corpus cannot reach a bucket, why. Every line carries its
provenance (transcript, first and last exchange, token count, pack, slice
seed, tokenizer) as extra keys TRL ignores (`actors.dataset.example_lines`).

Deterministic: transcripts in id order, slices in exchange order, slice
points seeded by transcript id and the slice seed (the pack's, or the
request's), JSON with fixed separators — the same store gives a
byte-identical file. The file is written to a temporary file and
renamed, and the `TrainingExample` rows for this tokenizer are replaced in the
same transaction, so a failure leaves the previous file and rows intact.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.atomic_files import write_lines_atomic
from actors.dataset.example_lines import MessageEncoder
from actors.dataset.preference_pairs import DEFAULT_MAX_PER_CONTEXT, DroppedPair
from actors.dataset.slicing import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_CONTEXT,
    CoverageReport,
    DroppedSlice,
    Example,
    LengthReport,
    MixPlan,
    TargetBucket,
    coverage_report,
    format_coverage_report,
    format_mix_plan,
    length_report,
    slice_transcripts,
)
from actors.dataset.transcript_format import TranscriptData
from actors.dataset.transcript_io import (
    IMPORT_STATUSES,
    ImportReport,
    export_transcripts,
    import_transcripts,
    load_transcript,
)
from actors.pack.loader import DomainPack
from state import training_data
from state.errors import CoachError
from state.models import utcnow
from state.store import Store

from .progress import OnProgress, StageProgress
from .relay import OnEvent

__all__ = [
    "DEFAULT_MAX_PER_CONTEXT",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MIN_CONTEXT",
    "IMPORT_STATUSES",
    "Accepted",
    "ImportReport",
    "PairsOutcome",
    "PairsRequest",
    "SkippedForReview",
    "SliceOutcome",
    "SliceRequest",
    "accepted_transcripts",
    "check_pairs_request",
    "check_slice_request",
    "export_transcripts",
    "format_coverage_report",
    "format_mix_plan",
    "import_transcripts",
    "slice_dataset",
    "slice_pairs",
]

BATCH_ROWS = 200


class SliceRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    out: Path
    """The training data file (JSONL, one {"messages": [...], provenance…} per line)."""
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    over_limit: Literal["keep_recent", "drop"] = "keep_recent"
    min_context: int = Field(default=DEFAULT_MIN_CONTEXT, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """Slice seed; None: the pack's (`slicing.seed`)."""


@dataclass(frozen=True)
class SkippedForReview:
    """A passed transcript left out because one of its fixups still waits for a person."""

    transcript_id: str


@dataclass
class Accepted:
    transcripts: list[TranscriptData] = field(default_factory=list)
    skipped_pending: list[str] = field(default_factory=list)
    capped: list[tuple[str, int]] = field(default_factory=list)  # (id, kept exchanges)


@dataclass(frozen=True)
class SliceOutcome:
    out: Path
    examples: int
    transcripts: int
    tokenizer: str
    lengths: LengthReport
    coverage: CoverageReport
    plan: MixPlan | None  # None when the pack sets no length mix
    pack: str
    seed: int
    trimmed: int
    dropped: list[DroppedSlice]
    capped: list[tuple[str, int]]
    skipped_pending: list[str]


READING, TOKENIZER, SLICING, WRITING = "reading transcripts", "loading the tokenizer", "slicing", "writing examples"
"""The stages `slice_dataset` reports to its `on_progress`, in order."""


def accepted_transcripts(store: Store, domain: str | None = None, *, on_progress: OnProgress | None = None) -> Accepted:
    """Passed training transcripts in id order, each limited to its accepted exchanges.

    Evaluation conversations never become training data, and with `domain`
    only imported transcripts and runs of that domain pack are taken.
    `on_progress` hears `READING` as the transcripts are read (done of all).
    """
    ids = training_data.passed_training_transcript_ids(store, domain)
    pending = training_data.transcripts_awaiting_review(store)
    caps = training_data.truncation_caps(store)
    out = Accepted()
    for done, tid in enumerate(ids, start=1):
        if on_progress is not None:
            on_progress(StageProgress(READING, done - 1, len(ids)))
        if tid in pending:
            out.skipped_pending.append(tid)
            continue
        data = load_transcript(store, tid)
        cap = caps.get(tid)
        if cap is not None and cap < len(data.exchanges):
            data = data.model_copy(update={"exchanges": data.exchanges[:cap]})
            out.capped.append((tid, cap))
        if data.exchanges:
            out.transcripts.append(data)
    if on_progress is not None:
        on_progress(StageProgress(READING, len(ids), len(ids)))
    return out


def _write_examples(
    store: Store,
    out: Path,
    examples: list[Example],
    encoder: MessageEncoder,
    tokenizer: str,
    on_progress: OnProgress | None = None,
) -> None:
    """Replace this tokenizer's `TrainingExample` rows and write the JSONL, in one pass and one transaction.

    Each example is encoded once; its line goes to the file and its row to the
    store as it goes, so memory stays bounded by one batch. The file is written
    inside the transaction: a failed write rolls the rows back too.
    """
    now = utcnow()
    with training_data.replacing_examples(store, tokenizer) as add_rows:

        def lines() -> Iterator[str]:
            batch: list[dict] = []
            for done, e in enumerate(examples):
                batch.append(
                    {
                        "transcript_id": e.transcript_id,
                        "start_exchange": e.start_exchange,
                        "end_exchange": e.end_exchange,
                        "tokenizer": tokenizer,
                        "token_count": e.token_count,
                        "created_at": now,
                    }
                )
                if len(batch) >= BATCH_ROWS:
                    add_rows(batch)
                    batch = []
                    if on_progress is not None:
                        on_progress(StageProgress(WRITING, done, len(examples)))
                yield encoder.line(e)
            add_rows(batch)
            if on_progress is not None:
                on_progress(StageProgress(WRITING, len(examples), len(examples)))

        write_lines_atomic(out, lines())


def check_slice_request(request: SliceRequest) -> None:
    """The request's own mistakes, found before the store is opened."""
    if request.out.is_dir():
        raise CoachError(f"--out {request.out} is a folder; give a file name such as training_data.jsonl")


def slice_dataset(
    store: Store,
    pack: DomainPack,
    request: SliceRequest,
    on_event: OnEvent | None = None,
    *,
    counter=None,
    on_progress: OnProgress | None = None,
) -> SliceOutcome:
    """Slice the pack's passed transcripts into examples, write them, and record them in the store.

    Token counts use the target model's tokenizer and chat template (Gemma 3
    unless `counter` says otherwise). Re-running replaces the previous
    examples of that tokenizer. `on_progress` hears each stage as it goes:
    `READING` per transcript, `TOKENIZER`, `SLICING` (one step: the slice
    points are planned over the whole corpus at once) and `WRITING` per batch
    of examples.
    """

    def tell(stage: str, done: int, total: int | None) -> None:
        if on_progress is not None:
            on_progress(StageProgress(stage, done, total))

    check_slice_request(request)
    accepted = accepted_transcripts(store, domain=pack.name, on_progress=on_progress)
    if on_event is not None:
        for tid in accepted.skipped_pending:
            on_event(SkippedForReview(tid))
    if not accepted.transcripts:
        raise CoachError(
            "no passed transcripts to slice in the workspace: run curation, or import trusted "
            "transcripts with `coach import --status accepted FILES`"
        )
    if counter is None:
        from actors.dataset.tokens import gemma3_counter

        tell(TOKENIZER, 0, 1)
        counter = gemma3_counter()
        tell(TOKENIZER, 1, 1)
    slicing = pack.manifest.slicing
    seed = slicing.seed if request.seed is None else request.seed
    mix = [TargetBucket(*b) for b in slicing.buckets()] or None
    tell(SLICING, 0, len(accepted.transcripts))
    result = slice_transcripts(
        accepted.transcripts,
        pack.system_prompt,
        counter,
        workers=min(4, os.cpu_count() or 1),
        mix=mix,
        count_flex=slicing.count_flex,
        max_tokens=request.max_tokens,
        over_limit=request.over_limit,
        min_context=request.min_context,
        seed=seed,
    )
    tell(SLICING, len(accepted.transcripts), len(accepted.transcripts))
    encoder = MessageEncoder(pack=pack.name, seed=seed, tokenizer=counter.name)
    _write_examples(store, request.out, result.examples, encoder, counter.name, on_progress)
    return SliceOutcome(
        out=request.out,
        examples=len(result.examples),
        transcripts=len(accepted.transcripts),
        tokenizer=counter.name,
        lengths=length_report(result.examples, mix),
        coverage=coverage_report(result),
        plan=result.plan,
        pack=pack.name,
        seed=seed,
        trimmed=result.trimmed,
        dropped=list(result.dropped),
        capped=accepted.capped,
        skipped_pending=accepted.skipped_pending,
    )


# --- preference pairs (`coach slice --pairs`) -------------------------------------------------------


class PairsRequest(BaseModel):
    """`coach slice --pairs`: preference pairs for DPO, under the same token limit as the SFT examples."""

    model_config = ConfigDict(frozen=True)

    out: Path
    """The pairs file (JSONL, one {"prompt", "chosen", "rejected", provenance…} per line)."""
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    over_limit: Literal["keep_recent", "drop"] = "keep_recent"
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    """Which pairs a crowded context keeps; None: the pack's `slicing.seed`."""
    max_per_context: int = Field(default=DEFAULT_MAX_PER_CONTEXT, ge=1)


@dataclass(frozen=True)
class PairsOutcome:
    out: Path
    pairs: int
    fixup_pairs: int
    judged_pairs: int
    transcripts: int  # transcripts the chosen replies come from
    contexts_shared: int
    capped: int
    trimmed: int
    dropped: list[DroppedPair]
    tokenizer: str
    pack: str
    seed: int
    longest: int


NO_PAIRS = (
    "no preference pairs in the workspace: a pair needs either a fixup that was accepted in a transcript that then "
    "passed its re-assessment (generate with `coach run`, whose curation rewrites failing replies, or accept fixups "
    "with `coach review --accept`), or two transcripts that reach the same context and whose replies there were "
    "judged differently (a pass, and a judge's NO citing that exchange)"
)


def check_pairs_request(request: PairsRequest) -> None:
    """The request's own mistakes, found before the store is opened."""
    if request.out.is_dir():
        raise CoachError(f"--pairs {request.out} is a folder; give a file name such as pairs.jsonl")


def slice_pairs(store: Store, pack: DomainPack, request: PairsRequest, *, counter=None) -> PairsOutcome:
    """Build preference pairs from the store (`actors.dataset.preference_pairs` has the rules) and write them.

    The file is written whole to a temporary file and renamed; the same store, pack and seed give a
    byte-identical file. CoachError when the store holds no pair, with what would make one.
    """
    from actors.dataset.preference_pairs import build_pairs, pair_line
    from state.preference_data import judged_training_transcripts

    check_pairs_request(request)
    transcripts = judged_training_transcripts(store, domain=pack.name)
    if counter is None:
        from actors.dataset.tokens import gemma3_counter

        counter = gemma3_counter()
    if not any(t.accepted_fixups for t in transcripts) and len(transcripts) < 2:
        raise CoachError(NO_PAIRS)  # told before the tokenizer loads
    seed = pack.manifest.slicing.seed if request.seed is None else request.seed
    result = build_pairs(
        transcripts,
        pack.system_prompt,
        counter,
        max_tokens=request.max_tokens,
        over_limit=request.over_limit,
        seed=seed,
        max_per_context=request.max_per_context,
    )
    if not result.pairs:
        if result.dropped:
            raise CoachError(
                f"{len(result.dropped)} preference pair(s) found, but none fits --max-tokens {request.max_tokens:,} "
                f"(the shortest needs {min(d.token_count for d in result.dropped):,}); raise --max-tokens"
            )
        raise CoachError(NO_PAIRS)
    write_lines_atomic(
        request.out, (pair_line(p, pack=pack.name, seed=seed, tokenizer=counter.name) for p in result.pairs)
    )
    return PairsOutcome(
        out=request.out,
        pairs=len(result.pairs),
        fixup_pairs=result.fixup_pairs,
        judged_pairs=result.judged_pairs,
        transcripts=len({p.transcript_id for p in result.pairs}),
        contexts_shared=result.contexts_shared,
        capped=result.capped,
        trimmed=result.trimmed,
        dropped=result.dropped,
        tokenizer=counter.name,
        pack=pack.name,
        seed=seed,
        longest=max(p.token_count for p in result.pairs),
    )
