"""`coach slice`: accepted transcripts → `training_data.jsonl` plus the length report.

Which transcripts are read, and how the file and its rows are written, is
`actors.usecases.datasets`; this command turns options into a `SliceRequest`
and prints the outcome.
"""

from __future__ import annotations

from pathlib import Path

import click

from actors.dataset.slicing import format_length_report
from actors.usecases.datasets import (
    DEFAULT_MAX_PER_CONTEXT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_CONTEXT,
    PairsRequest,
    SkippedForReview,
    SliceRequest,
    check_pairs_request,
    check_slice_request,
    format_coverage_report,
    format_mix_plan,
    slice_dataset,
    slice_pairs,
)
from actors.usecases.progress import StageProgress

from ..context import AppContext, pass_app
from ..progress import ProgressOutput


class SliceProgress:
    """One bar (or a few plain lines) per stage of slicing, in the order the use case reports them."""

    def __init__(self, output: ProgressOutput) -> None:
        self.output = output
        self.tasks: dict[str, int] = {}

    def on_progress(self, progress: StageProgress) -> None:
        task = self.tasks.get(progress.stage)
        if task is None:
            self.tasks[progress.stage] = self.output.task(progress.stage, progress.total)
            if progress.done:
                self.output.update(self.tasks[progress.stage], completed=progress.done)
        else:
            self.output.update(task, completed=progress.done, total=progress.total)

    def on_event(self, event) -> None:
        if isinstance(event, SkippedForReview):
            self.output.line(f"skipped    {event.transcript_id} (a fixup is still awaiting review)")


@click.command("slice")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Training data file to write (JSONL, one {"messages": [...]} per line, with its provenance).',
)
@click.option(
    "--pairs",
    "pairs_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also (or instead) write DPO preference pairs here (JSONL, TRL's prompt/chosen/rejected with provenance): "
    "an accepted fixup that passed re-assessment against the reply it replaced, and replies to one shared "
    "context judged differently.",
)
@click.option(
    "--max-pairs-per-context",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PER_CONTEXT,
    show_default=True,
    help="With --pairs: at most this many pairs share one prompt (the seed chooses which).",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    help="No example above this many tokens (target tokenizer and chat template) is written.",
)
@click.option(
    "--over-limit",
    type=click.Choice(["keep-recent", "drop"]),
    default="keep-recent",
    show_default=True,
    help="An over-long slice keeps its most recent exchanges that fit, or is dropped.",
)
@click.option(
    "--min-context",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_CONTEXT,
    show_default=True,
    help="No slice ends before this exchange (shorter transcripts give one slice, at their end).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    default=None,
    help="Slice seed (default: the pack's slicing.seed): the same seed and transcripts give the same file.",
)
@pass_app
def slice_cmd(
    app: AppContext,
    out_path: Path | None,
    pairs_path: Path | None,
    max_pairs_per_context: int,
    max_tokens: int,
    over_limit: str,
    min_context: int,
    seed: int | None,
) -> None:
    """Slice passed transcripts into long-context training examples.

    Each example is the system prompt, the conversation so far and the
    assistant reply to predict. Slice points are seeded by the transcript id
    and the slice seed, denser toward the end, and placed to approach the
    pack's target length mix; buckets the transcripts cannot reach are named,
    with why. Token counts use the target model's tokenizer and chat template
    (Gemma 3). Every line carries its provenance. Re-running replaces the
    previous examples. With --pairs, preference pairs for `coach train
    --method dpo` are written too (or alone, without --out).
    """
    if out_path is None and pairs_path is None:
        raise click.UsageError("give --out FILE for training examples, --pairs FILE for preference pairs, or both")
    pairs_request = None
    if pairs_path is not None:
        pairs_request = PairsRequest(
            out=pairs_path,
            max_tokens=max_tokens,
            over_limit=over_limit.replace("-", "_"),
            seed=seed,
            max_per_context=max_pairs_per_context,
        )
        check_pairs_request(pairs_request)
    if out_path is None:
        _slice_pairs(app, pairs_request)
        return
    request = SliceRequest(
        out=out_path,
        max_tokens=max_tokens,
        over_limit=over_limit.replace("-", "_"),
        min_context=min_context,
        seed=seed,
    )
    check_slice_request(request)  # before the store is opened: a plain option mistake creates nothing
    store, pack = app.store, app.pack()
    with ProgressOutput() as output:
        view = SliceProgress(output)
        result = slice_dataset(store, pack, request, view.on_event, on_progress=view.on_progress)
    click.echo(format_length_report(result.lengths))
    if result.plan is not None:
        click.echo(format_mix_plan(result.plan))
    click.echo(format_coverage_report(result.coverage))
    click.echo(f"{result.examples} examples from {result.transcripts} transcripts → {result.out}")
    click.echo(
        f"tokenizer  {result.tokenizer}; limit {max_tokens:,} tokens; min context {min_context}; "
        f"pack {result.pack}; slice seed {result.seed}"
    )
    if result.trimmed:
        click.echo(f"trimmed    {result.trimmed} over-long slices to their most recent exchanges under the limit")
    if result.dropped:
        click.echo(
            f"dropped    {len(result.dropped)} slices over the limit: "
            + ", ".join(f"{d.transcript_id}@{d.end_exchange} ({d.token_count:,})" for d in result.dropped[:5])
            + (" …" if len(result.dropped) > 5 else "")
        )
    for tid, kept in result.capped:
        click.echo(f"note       {tid}: used its first {kept} exchanges (recorded truncation)")
    if pairs_request is not None:
        _slice_pairs(app, pairs_request)


def _slice_pairs(app: AppContext, request: PairsRequest) -> None:
    result = slice_pairs(app.store, app.pack(), request)
    click.echo(
        f"{result.pairs} preference pairs ({result.fixup_pairs} from accepted fixups, {result.judged_pairs} from "
        f"replies judged differently) from {result.transcripts} transcripts → {result.out}"
    )
    click.echo(
        f"tokenizer  {result.tokenizer}; limit {request.max_tokens:,} tokens (longest pair {result.longest:,}); "
        f"pack {result.pack}; seed {result.seed}; {result.contexts_shared} context(s) reached by several transcripts"
    )
    if result.capped:
        click.echo(f"capped     {result.capped} pairs over --max-pairs-per-context {request.max_per_context}")
    if result.trimmed:
        click.echo(f"trimmed    {result.trimmed} over-long pairs to their most recent exchanges under the limit")
    if result.dropped:
        click.echo(
            f"dropped    {len(result.dropped)} pairs over the limit: "
            + ", ".join(f"{d.transcript_id}@{d.exchange} ({d.token_count:,})" for d in result.dropped[:5])
            + (" …" if len(result.dropped) > 5 else "")
        )
