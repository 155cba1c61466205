"""`coach slice`: accepted transcripts → `training_data.jsonl` plus the length report.

Which assistant messages may be supervised: only transcripts whose status is
"passed" are read (what curation gives a passing or fixed-and-passing
transcript, and what `coach import --status accepted` gives trusted data).
Their `Exchange` rows are the accepted version of the conversation — an
accepted fixup is written into those rows, the rejected original stays in the
`Fixup` table — so every assistant message of every example comes from an
accepted version. Two guards keep it so if curation is mid-flight: a
transcript with a fixup still awaiting review is skipped, and a recorded
truncation (`Rejection` with action "truncated") caps the exchanges used at
`kept_exchanges`.

Deterministic: transcripts in id order, slices in exchange order, slice
points seeded by transcript id, JSON with fixed separators — the same store
gives a byte-identical file. The file is written to a temporary file and
renamed, and the `TrainingExample` rows for this tokenizer are replaced in the
same transaction, so a failure leaves the previous file and rows intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy import bindparam, insert
from sqlmodel import Session, delete, select

from actors.slicing import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_CONTEXT,
    Example,
    format_length_report,
    length_report,
    slice_transcripts,
)
from actors.tokens import gemma3_counter
from actors.transcript_format import TranscriptData
from actors.transcript_io import load_transcript
from state.errors import CoachError
from state.models import Fixup, Rejection, Run, TrainingExample, Transcript, utcnow
from state.store import Store

from ..context import AppContext, pass_app

PASSED = "passed"


@dataclass
class Accepted:
    transcripts: list[TranscriptData] = field(default_factory=list)
    skipped_pending: list[str] = field(default_factory=list)
    capped: list[tuple[str, int]] = field(default_factory=list)  # (id, kept exchanges)


def accepted_transcripts(store: Store, domain: str | None = None) -> Accepted:
    """Passed training transcripts in id order, each limited to its accepted exchanges.

    Evaluation conversations never become training data, and with `domain`
    only imported transcripts and runs of that domain pack are taken.
    """
    with store.session() as s:
        query = (select(Transcript.id).outerjoin(Run, Run.id == Transcript.run_id)
                 .where(Transcript.status == PASSED)
                 .where((Transcript.run_id.is_(None)) | (Run.kind != "eval")))
        if domain is not None:
            query = query.where((Transcript.run_id.is_(None)) | (Run.domain == domain))
        ids = list(s.exec(query.order_by(Transcript.id)).all())
        pending = set(s.exec(select(Fixup.transcript_id).where(Fixup.decision == "pending")).all())
        caps: dict[str, int] = {}
        for tid, kept in s.exec(select(Rejection.transcript_id, Rejection.kept_exchanges)
                                .where(Rejection.action == "truncated")).all():
            if kept is not None:
                caps[tid] = min(kept, caps.get(tid, kept))
    out = Accepted()
    for tid in ids:
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
    return out


class MessageEncoder:
    """JSON for examples, each message encoded once.

    The examples of one transcript share their message dicts, and a long
    transcript's early messages appear in every one of its ~20 examples;
    encoding each once and joining the pieces turns the (quadratic) JSON work
    into string concatenation. The output is exactly
    `json.dumps({"messages": [...]}, ensure_ascii=False, separators=(",", ":"))`.
    """

    def __init__(self) -> None:
        self._memo: dict[int, tuple[object, str]] = {}  # id(message) -> (message, its JSON); keeps it alive

    def message(self, message) -> str:
        hit = self._memo.get(id(message))
        if hit is None or hit[0] is not message:
            hit = (message, json.dumps(dict(message), ensure_ascii=False, separators=(",", ":")))
            self._memo[id(message)] = hit
        return hit[1]

    def messages(self, messages) -> str:
        return "[" + ",".join(self.message(m) for m in messages) + "]"


def example_line(example: Example, encoder: MessageEncoder | None = None) -> str:
    """One JSONL line in the spec's training format: `{"messages": [...]}` and nothing else."""
    return '{"messages":' + (encoder or MessageEncoder()).messages(example.messages) + "}"


def write_lines_atomic(path: Path, lines: Iterable[str]) -> None:
    """Stream lines to a temporary file beside `path`, then rename it into place.

    Streams rather than building one string: a full run's file can be hundreds
    of MB. Any OS error becomes a CoachError naming the path; any other error
    (from the lines' producer) removes the temporary file and propagates.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise CoachError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                fh.write(line)
                fh.write("\n")
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise CoachError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_INSERT = insert(TrainingExample.__table__).values(
    transcript_id=bindparam("transcript_id"),
    start_exchange=bindparam("start_exchange"),
    end_exchange=bindparam("end_exchange"),
    tokenizer=bindparam("tokenizer"),
    token_count=bindparam("token_count"),
    created_at=bindparam("created_at"),
)


def export_examples(session: Session, out_path: Path, examples: list[Example], tokenizer: str,
                    batch_size: int = 200) -> None:
    """Replace this tokenizer's `TrainingExample` rows and write the JSONL, in one pass.

    Each example is encoded once; its line goes to the file and its row into
    the session as it goes, so memory stays bounded by one batch.
    """
    session.exec(delete(TrainingExample).where(TrainingExample.tokenizer == tokenizer))
    encoder, now, batch = MessageEncoder(), utcnow(), []

    def lines() -> Iterable[str]:
        for e in examples:
            messages_json = encoder.messages(e.messages)
            batch.append({"transcript_id": e.transcript_id, "start_exchange": e.start_exchange,
                          "end_exchange": e.end_exchange, "tokenizer": tokenizer, "token_count": e.token_count,
                          "created_at": now})
            if len(batch) >= batch_size:
                session.execute(_INSERT, batch)
                batch.clear()
            yield '{"messages":' + messages_json + "}"
        if batch:
            session.execute(_INSERT, batch)

    write_lines_atomic(out_path, lines())


@click.command("slice")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Training data file to write (JSONL, one {\"messages\": [...]} per line).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_TOKENS, show_default=True,
              help="No example above this many tokens (target tokenizer and chat template) is written.")
@click.option("--over-limit", type=click.Choice(["keep-recent", "drop"]), default="keep-recent", show_default=True,
              help="An over-long slice keeps its most recent exchanges that fit, or is dropped.")
@click.option("--min-context", type=click.IntRange(min=1), default=DEFAULT_MIN_CONTEXT, show_default=True,
              help="No slice ends before this exchange (shorter transcripts give one slice, at their end).")
@pass_app
def slice_cmd(app: AppContext, out_path: Path, max_tokens: int, over_limit: str, min_context: int) -> None:
    """Slice passed transcripts into long-context training examples.

    Each example is the system prompt, the conversation so far and the
    assistant reply to predict. Slice points are seeded by the transcript id
    and denser toward the end. Token counts use the target model's tokenizer
    and chat template (Gemma 3). Re-running replaces the previous examples.
    """
    if out_path.is_dir():
        raise CoachError(f"--out {out_path} is a folder; give a file name such as training_data.jsonl")
    store = app.store
    pack = app.pack()
    accepted = accepted_transcripts(store, domain=pack.name)
    for tid in accepted.skipped_pending:
        click.echo(f"skipped    {tid} (a fixup is still awaiting review)")
    if not accepted.transcripts:
        raise CoachError("no passed transcripts to slice in the workspace: run curation, or import trusted "
                         "transcripts with `coach import --status accepted FILES`")
    system_prompt = pack.system_prompt
    counter = gemma3_counter()
    result = slice_transcripts(
        accepted.transcripts, system_prompt, counter,
        workers=min(4, os.cpu_count() or 1),
        max_tokens=max_tokens, over_limit=over_limit.replace("-", "_"), min_context=min_context,
    )
    with store.session() as s:
        # The file is written inside the transaction: a failed write rolls the rows back too.
        export_examples(s, out_path, result.examples, counter.name)

    click.echo(format_length_report(length_report(result.examples)))
    click.echo(f"{len(result.examples)} examples from {len(accepted.transcripts)} transcripts → {out_path}")
    click.echo(f"tokenizer  {counter.name}; limit {max_tokens:,} tokens; min context {min_context}")
    if result.trimmed:
        click.echo(f"trimmed    {result.trimmed} over-long slices to their most recent exchanges under the limit")
    if result.dropped:
        click.echo(f"dropped    {len(result.dropped)} slices over the limit: "
                   + ", ".join(f"{d.transcript_id}@{d.end_exchange} ({d.token_count:,})" for d in result.dropped[:5])
                   + (" …" if len(result.dropped) > 5 else ""))
    for tid, kept in accepted.capped:
        click.echo(f"note       {tid}: used its first {kept} exchanges (recorded truncation)")
