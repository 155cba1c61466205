"""Training data: `messages` JSONL in, tokenized examples with assistant-only labels out.

Masking. The loss covers every assistant turn of an example (its content and
the end-of-turn marker that teaches the model to stop) and nothing the user or
the system prompt said. The tokens come from the model's own chat template;
the mask comes from the same template's ``{% generation %}`` markers through
``apply_chat_template(return_assistant_tokens_mask=True)``, the mechanism
TRL's ``assistant_only_loss`` uses. Gemma's published template has no
markers; TRL ships a training variant of it (``gemma3_training.jinja``) that
renders byte-identical text with the markers added, and
``get_training_chat_template`` picks it. The tests decode the unmasked tokens
of a real example and compare them with the assistant replies.

Objective (`--loss`). ``all-assistant`` keeps that mask as it is: every
assistant reply of the history is supervised. ``last-reply`` keeps only the
final reply's span (`last_reply_only`), the same tokens TRL's
prompt–completion form would train. Slices of one conversation are nested
(each one is the previous plus an exchange), so with ``all-assistant`` the
early replies of a conversation are trained once per slice; ``last-reply``
trains each reply once, with all that came before it as context.

Validation (`split_examples`). A held-out fraction of *conversations*: every
slice of one transcript lands on the same side (the `transcript_id`
provenance key, else the first user message), chosen by a seeded hash, so
the validation loss measures replies to conversations never trained on.

Length. Nothing is truncated silently: every example is measured first, the
ones above the limit are counted and reported before training, and they are
dropped or truncated from the front (whole oldest exchanges removed, the
system prompt kept) only when the caller asked for it explicitly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from state.errors import CoachError

OverLength = Literal["drop", "truncate-front"]
OVER_LENGTH_CHOICES: tuple[str, ...] = ("drop", "truncate-front")
IGNORE_INDEX = -100
Loss = Literal["all-assistant", "last-reply"]
LOSS_CHOICES: tuple[str, ...] = ("all-assistant", "last-reply")
T = TypeVar("T")
Item = TypeVar("Item")
M = TypeVar("M")


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line in the JSONL file
    messages: list[dict[str, str]]
    group: str = ""  # the conversation it was sliced from: `transcript_id`, else its first user message


class DataError(CoachError):
    """The training file cannot be used as it is; the message says where and why."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_messages(messages: Any) -> str | None:
    """Why `messages` is not a trainable conversation, or None when it is."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    start = 1 if isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"messages[{i}] needs a text 'content'"
        if i < start:
            continue
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if message.get("role") != expected:
            return f"messages[{i}]: expected role {expected!r}, got {message.get('role')!r}"
    if not any(m["role"] == "assistant" for m in messages[start:]):
        return "no assistant turn to learn from"
    return None


def read_jsonl(path: Path, parse: Callable[[int, Any], tuple[T | None, str | None]], *, missing: str) -> list[T]:
    """Every non-blank line of a JSONL file through `parse(line number, record)`; all problems raised at once.

    `parse` returns (item, None) to keep an item, (None, reason) for an unusable line, or (None, None)
    to skip a line silently (a repeat). The SFT, DPO and GRPO readers share this so that every file
    `coach train` reads reports its bad lines the same way (the first 20, then a count).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{missing}: {path}")
    items: list[T] = []
    problems: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                problems.append(f"line {number}: not JSON ({err.msg})")
                continue
            item, reason = parse(number, record)
            if reason:
                problems.append(f"line {number}: {reason}")
            elif item is not None:
                items.append(item)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"{path}: {len(problems)} unusable line(s):\n{shown}{more}")
    return items


def clean_messages(messages: Sequence[dict]) -> list[dict[str, str]]:
    """Only `role` and `content` of each message: what the chat template renders, without provenance keys."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _example_of(number: int, record: Any) -> tuple[Example | None, str | None]:
    messages = record.get("messages") if isinstance(record, dict) else None
    reason = check_messages(messages)
    if reason:
        return None, reason
    clean = clean_messages(messages)
    return Example(number, clean, example_group(record, clean)), None


def read_examples(path: Path) -> list[Example]:
    """Every line of a `messages` JSONL file, validated; all problems are reported at once (the first 20)."""
    examples = read_jsonl(path, _example_of, missing="training data not found")
    if not examples:
        raise DataError(f'{path}: no training examples (expected one {{"messages": [...]}} object per line)')
    return examples


def example_group(record: dict[str, Any], messages: Sequence[dict]) -> str:
    """Which conversation an example was sliced from: its `transcript_id`, else its first user message."""
    transcript = record.get("transcript_id")
    if transcript not in (None, ""):
        return f"transcript:{transcript}"
    first = next((m["content"] for m in messages if m["role"] == "user"), "")
    return f"first-user:{first}"


MIN_GROUPS_FOR_VALIDATION = 10
DEFAULT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Split:
    train: list[Example]
    validation: list[Example]
    groups: int  # conversations in the file
    validation_groups: int
    note: str | None = None


def split_examples(examples: Sequence[Example], fraction: float | None, seed: int) -> Split:
    """Hold out about `fraction` of the conversations (never part of one), deterministically for a seed.

    `fraction` None means the default: 0.1 with at least `MIN_GROUPS_FOR_VALIDATION` conversations,
    else no validation (said in `note`). Each conversation's side comes from a hash of the seed and its
    key, so the same file and seed give the same split, and adding conversations moves no other one;
    the number held out is round(fraction × conversations), at least one and never all of them.
    """
    groups = sorted({e.group for e in examples})
    note = None
    if fraction is None:
        if len(groups) >= MIN_GROUPS_FOR_VALIDATION:
            fraction = DEFAULT_VAL_FRACTION
        else:
            fraction = 0.0
            note = (
                f"no validation split: {len(groups)} conversation(s), fewer than {MIN_GROUPS_FOR_VALIDATION} "
                "(pass --val-fraction to hold some out anyway)"
            )
    if not 0 <= fraction < 1:
        raise DataError(f"--val-fraction must be at least 0 and below 1, got {fraction}")
    if fraction == 0:
        return Split(list(examples), [], len(groups), 0, note)
    if len(groups) < 2:
        raise DataError(
            f"--val-fraction {fraction}: the file holds {len(groups)} conversation, and a validation split needs "
            "at least 2 (one to train on, one to hold out); pass --val-fraction 0"
        )
    wanted = min(max(1, round(fraction * len(groups))), len(groups) - 1)

    def rank(group: str) -> str:
        return hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()

    held = set(sorted(groups, key=rank)[:wanted])
    return Split(
        [e for e in examples if e.group not in held],
        [e for e in examples if e.group in held],
        len(groups),
        len(held),
        note,
    )


# --- chat templates ----------------------------------------------------------------------------------


def set_chat_templates(tokenizer: Any, choice: str, *, model_type: str = "") -> str:
    """Give `tokenizer` its inference chat template and return the training variant with generation markers.

    `choice` is the preset's `chat_template`. ``gemma3``: Gemma 3's published template wherever the
    checkpoint has none (the bundled 270M GGUF) or has a Gemma 3 template TRL does not recognise;
    a model of another family named with --model keeps its own template. ``model``: the tokenizer's
    own template, always. The returned template renders the same text as the inference one, with
    ``{% generation %}`` around every assistant reply.
    """
    from trl.chat_template_utils import gemma3_chat_template, get_training_chat_template, has_generation_markers

    gemma = model_type.startswith("gemma3")
    if not tokenizer.chat_template and (choice == "gemma3" or gemma):
        tokenizer.chat_template = gemma3_chat_template
    if not tokenizer.chat_template:
        raise DataError(
            "the model's tokenizer has no chat template; choose one in the preset (chat_template: gemma3) "
            "or train a model that ships one"
        )
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template["default"]
    if has_generation_markers(template):
        return template
    try:
        return get_training_chat_template(tokenizer) or template
    except ValueError:
        if choice == "gemma3" and gemma:
            tokenizer.chat_template = gemma3_chat_template
            return get_training_chat_template(tokenizer)
        raise DataError(
            "the model's chat template has no {% generation %} markers and TRL has no training variant of it, "
            "so assistant turns cannot be told from the rest; give the model a template with markers"
        ) from None


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[dict], training_template: str
) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation and labels that keep only assistant tokens (others -100)."""
    out = tokenizer.apply_chat_template(
        list(messages),
        chat_template=training_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids = list(out["input_ids"])
    mask = out["assistant_masks"]
    labels = [token if keep else IGNORE_INDEX for token, keep in zip(ids, mask, strict=True)]
    return ids, labels


def last_reply_only(labels: Sequence[int]) -> list[int]:
    """`labels` with every assistant span but the last one masked (the `last-reply` objective).

    The spans are the runs of labelled tokens the template's generation markers produced, one per
    assistant reply; the last run is the final reply with its end-of-turn marker.
    """
    out = list(labels)
    end = len(out)
    while end and out[end - 1] == IGNORE_INDEX:
        end -= 1
    start = end
    while start and out[start - 1] != IGNORE_INDEX:
        start -= 1
    for i in range(start):
        out[i] = IGNORE_INDEX
    return out


def tokenize_example(
    tokenizer: Any, messages: Sequence[dict], training_template: str, loss: Loss = "all-assistant"
) -> tuple[list[int], list[int]]:
    """`tokenize_conversation` with the run's objective applied to the labels."""
    ids, labels = tokenize_conversation(tokenizer, messages, training_template)
    if loss == "last-reply":
        labels = last_reply_only(labels)
    return ids, labels


# --- lengths --------------------------------------------------------------------------------------


@dataclass
class LengthReport:
    examples: int = 0
    max_length: int = 0
    over: int = 0  # examples whose full conversation is above max_length
    dropped: int = 0
    truncated: int = 0
    exchanges_removed: int = 0
    kept: int = 0
    trained_tokens: int = 0  # tokens with a label
    total_tokens: int = 0  # tokens of the kept examples
    loss: str = "all-assistant"
    validation: int = 0  # kept examples held out for the validation loss (included in `kept`)
    validation_groups: int = 0
    groups: int = 0
    longest: int = 0  # longest example before any truncation
    over_lines: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "over_lines"} | {"over_lines": self.over_lines[:50]}

    unit = "example"
    """What one line of the data file is, as the report names it (DPO: a preference pair; GRPO: a prompt)."""
    limit_per = "per example"

    def training_line(self) -> str:
        which = "the last reply's" if self.loss == "last-reply" else "assistant"
        return (
            f"training on {self.kept - self.validation} example(s), {self.total_tokens:,} tokens in all, "
            f"{self.trained_tokens:,} of them {which} tokens with loss (--loss {self.loss})"
        )

    def lines(self) -> list[str]:
        unit = f"{self.unit}(s)"
        out = [
            f"{self.examples} {unit}, longest {self.longest:,} tokens; limit {self.max_length:,} tokens {self.limit_per}"
        ]
        if self.over:
            lines = ", ".join(map(str, self.over_lines[:10])) + (" …" if len(self.over_lines) > 10 else "")
            out.append(f"{self.over} {unit} above the limit (lines {lines})")
            if self.truncated:
                out.append(
                    f"  truncated from the front: {self.truncated} (removed {self.exchanges_removed} oldest exchange(s) "
                    "in all, system prompt kept)"
                )
            if self.dropped:
                out.append(f"  dropped: {self.dropped}")
        else:
            out.append(f"no {self.unit} above the limit")
        out.append(self.training_line())
        if self.validation:
            out.append(
                f"validation: {self.validation} {unit} from {self.validation_groups} of {self.groups} "
                "conversation(s), held out whole"
            )
        return out


class OverLengthError(DataError):
    def __init__(self, report: LengthReport):
        self.report = report
        super().__init__(
            "\n".join(report.lines()[:2])
            + "\nnothing is truncated silently: pass --over-length drop or --over-length truncate-front, "
            "or raise --max-length"
        )


@dataclass
class PreparedData:
    rows: list[dict[str, Any]]  # {"input_ids": int32 array, "labels": int32 array} per kept example
    report: LengthReport
    sha256: str
    path: Path
    val_rows: list[dict[str, Any]] = field(default_factory=list)  # held-out conversations, for the eval loss
    note: str | None = None  # why there is no validation split, when it was left out by default


def _split(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    start = 1 if messages[0]["role"] == "system" else 0
    return messages[:start], messages[start:]


def front_cuts(messages: list[dict]) -> Iterator[tuple[int, list[dict]]]:
    """(exchanges removed, messages) with one more oldest exchange gone each time, the system prompt kept.

    The last user message is never removed. The DPO and GRPO readers take the first cut that fits.
    """
    head, turns = _split(messages)
    removed = 0
    while len(turns) > 1:
        turns, removed = turns[2:], removed + 1
        yield removed, head + turns


def split_rows(
    path: Path,
    kept: Sequence[tuple[Example, dict[str, Any]]],
    report: LengthReport,
    val_fraction: float | None,
    seed: int,
    *,
    what: str,
) -> PreparedData:
    """The kept rows split by conversation (`split_examples`) into training and validation rows, with the report.

    `what` names a row in the error raised when holding out leaves nothing to train on ("preference pair").
    """
    split = split_examples([example for example, _ in kept], val_fraction, seed)
    held = {e.line for e in split.validation}
    rows = [row for example, row in kept if example.line not in held]
    val_rows = [row for example, row in kept if example.line in held]
    report.groups, report.validation_groups, report.validation = split.groups, split.validation_groups, len(val_rows)
    if not rows:
        raise DataError(f"no {what} is left to train on once the validation conversations are held out")
    return PreparedData(
        rows=rows, report=report, sha256=file_sha256(path), path=Path(path), val_rows=val_rows, note=split.note
    )


def _truncate_front(tokenizer: Any, messages: list[dict], template: str, max_length: int, loss: Loss = "all-assistant"):
    """Drop the fewest oldest exchanges (user + reply pairs) so the rest fits; None if even the last does not."""
    head, turns = _split(messages)
    pairs = (len(turns) + 1) // 2
    lo, hi, best = 1, pairs - 1, None
    while lo <= hi:  # lengths shrink as more exchanges go, so the smallest fitting cut is found by bisection
        k = (lo + hi) // 2
        ids, labels = tokenize_example(tokenizer, head + turns[2 * k :], template, loss)
        if len(ids) <= max_length:
            best, hi = (k, ids, labels), k - 1
        else:
            lo = k + 1
    return best


def apply_over_length(
    items: Sequence[Item],
    measure: Callable[[Item], tuple[M, int]],
    cut: Callable[[Item], tuple[Item, int, M] | None],
    report: LengthReport,
    over_length: OverLength | None,
) -> list[tuple[Item, M]]:
    """Every item with its measure, those over `report.max_length` truncated or dropped as `over_length` says.

    One policy for SFT examples, DPO pairs and GRPO prompts (each has its file `line`): `measure(item)` gives what the reader keeps
    (token ids, side lengths…) and the length that must fit; `cut(item)` is the item without its fewest
    oldest exchanges so it fits, with how many went and its new measure, or None when nothing fits.
    Any item over the limit without a policy stops everything first (`OverLengthError`), nothing truncated
    silently. The report counts what was over, dropped, truncated and removed.
    """
    if over_length is not None and over_length not in OVER_LENGTH_CHOICES:
        raise DataError(f"unknown over-length policy {over_length!r}; choose {' or '.join(OVER_LENGTH_CHOICES)}")
    measured = []
    for item in items:
        kept, length = measure(item)
        report.longest = max(report.longest, length)
        if length > report.max_length:
            report.over += 1
            report.over_lines.append(item.line)
        measured.append((item, kept, length))
    if report.over and over_length is None:
        raise OverLengthError(report)
    out: list[tuple[Item, M]] = []
    for item, kept, length in measured:
        if length > report.max_length:
            shorter = cut(item) if over_length == "truncate-front" else None
            if shorter is None:
                report.dropped += 1
                continue
            item, removed, kept = shorter
            report.truncated += 1
            report.exchanges_removed += removed
        out.append((item, kept))
    return out


def prepare_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    training_template: str,
    max_length: int,
    over_length: OverLength | None,
    loss: Loss = "all-assistant",
) -> tuple[list[dict[str, Any]], LengthReport]:
    """Tokenize and mask every example, then apply the over-length policy; raise before training if refused.

    Each row also carries its example's `line`, which `prepare_data` uses to tell validation rows apart.
    """
    import numpy as np

    if loss not in LOSS_CHOICES:
        raise DataError(f"unknown loss {loss!r}; choose {' or '.join(LOSS_CHOICES)}")
    report = LengthReport(examples=len(examples), max_length=max_length, loss=loss)

    def measure(example: Example) -> tuple[tuple[Any, Any], int]:
        ids, labels = tokenize_example(tokenizer, example.messages, training_template, loss)
        # int32 arrays, not Python lists: a real set holds a hundred million tokens
        return (np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=np.int32)), len(ids)

    def cut(example: Example):
        shorter = _truncate_front(tokenizer, example.messages, training_template, max_length, loss)
        if shorter is None:
            return None
        removed, ids, labels = shorter
        return example, removed, (np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=np.int32))

    rows: list[dict[str, Any]] = []
    for example, (ids, labels) in apply_over_length(examples, measure, cut, report, over_length):
        trained = int((labels != IGNORE_INDEX).sum())
        if not trained:
            raise DataError(f"line {example.line}: no assistant token is trained (check the chat template's markers)")
        rows.append({"input_ids": ids, "labels": labels, "line": example.line})
        report.kept += 1
        report.total_tokens += len(ids)
        report.trained_tokens += trained
    if not rows:
        raise DataError("no example is left to train on after the over-length policy:\n" + "\n".join(report.lines()))
    return rows, report


def prepare_data(
    path: Path,
    tokenizer: Any,
    training_template: str,
    max_length: int,
    over_length: OverLength | None,
    *,
    loss: Loss = "all-assistant",
    val_fraction: float | None = 0.0,
    seed: int = 42,
) -> PreparedData:
    """Read, split by conversation, tokenize and mask; `rows` are the training rows, `val_rows` the held-out ones."""
    examples = read_examples(path)
    split = split_examples(examples, val_fraction, seed)
    rows, report = prepare_examples(examples, tokenizer, training_template, max_length, over_length, loss)
    held = {e.line for e in split.validation}
    report.groups, report.validation_groups = split.groups, split.validation_groups
    val_rows = [r for r in rows if r["line"] in held]
    rows = [r for r in rows if r["line"] not in held]
    report.validation = len(val_rows)
    if not rows:
        raise DataError("no training example is left once the validation conversations are held out")
    return PreparedData(
        rows=rows, report=report, sha256=file_sha256(path), path=Path(path), val_rows=val_rows, note=split.note
    )


def to_dataset(rows: list[dict[str, Any]]):
    """An Arrow-backed `datasets.Dataset` of already tokenized rows (TRL trains it as is)."""
    import numpy as np
    from datasets import Dataset, Features, Sequence, Value

    features = Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32"))})
    return Dataset.from_dict(
        {
            "input_ids": [np.asarray(r["input_ids"], dtype=np.int32) for r in rows],
            "labels": [np.asarray(r["labels"], dtype=np.int32) for r in rows],
        },
        features=features,
    )
