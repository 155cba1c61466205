"""Preference pairs for DPO: the same conversation so far, a reply the pipeline preferred and one it did not.

Two kinds of evidence in the store make a pair (`state.preference_data`
reads them):

1. **Fixups** (`fixup_pairs`). A rewrite was accepted, replaced the reply,
   and the transcript then passed its re-assessment. *Chosen* is the reply as
   it stands now (the last accepted rewrite of that exchange), *rejected* is
   each original an accepted rewrite replaced there. "Passed re-assessment"
   means: the transcript's status is passed, its latest assessment passed,
   and every criterion a rewrite of that exchange was made for is answered
   YES or NA there (a transcript can pass with a criterion failing). A
   rewrite that was refused (entailment failed, or a person rejected it) says
   nothing about which reply is better, so it makes no pair.
2. **Replies judged differently** (`judged_pairs`). Two transcripts share a
   context — exactly the same user messages and replies up to the same user
   message (two runs with one seed and different assistants, for instance) —
   and reply differently there. A reply is *judged good* when its transcript
   passed and no judge's NO names its exchange; it is *judged bad* when a
   judge answered NO on some criterion with reasoning that cites its exchange
   (`cited_exchanges`, the rule the curator uses to pick what to rewrite).
   Every good reply of a context is paired with every bad one. Contexts are
   found by hashing each exchange's full history, so nothing is compared
   that does not match word for word.

Only replies of usable transcripts are chosen: passed, none of their fixups
waiting for a person, and within any recorded truncation (as for `coach
slice`). A rejected reply may come from any training transcript.

Limits and provenance follow the SFT examples: a pair's `token_count` is
the longer of prompt+chosen and prompt+rejected under the target tokenizer
and chat template; above `max_tokens` a pair keeps its most recent exchanges
that fit (`keep_recent`, the system prompt kept) or is dropped. Every line
carries `transcript_id`, `first_exchange`, `last_exchange`, `token_count`,
`pack`, `slice_seed` and `tokenizer`, plus `source` (fixup | judged),
`reason` and `rejected_transcript_id`. The seed decides which pairs a
context keeps when it has more than `max_per_context` (good × bad grows as
a product), by a hash of the seed and the two replies.

Pure: no store, no model (the token counter is handed in).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from ..curation.curator import cited_exchanges
from .tokens import TokenCounter

Source = Literal["fixup", "judged"]
OverLimit = Literal["keep_recent", "drop"]
DEFAULT_MAX_PER_CONTEXT = 4
ACCEPTABLE = ("YES", "NA")

PAIR_KEYS: tuple[str, ...] = (
    "transcript_id",
    "first_exchange",
    "last_exchange",
    "token_count",
    "pack",
    "slice_seed",
    "tokenizer",
    "source",
    "reason",
    "rejected_transcript_id",
)
"""Provenance keys of a pair line, in order, after `prompt`, `chosen` and `rejected`."""


class FixupLike(Protocol):
    exchange: int
    reason_kind: str
    reason: str
    original: str
    proposed: str


class AnswerLike(Protocol):
    criterion: str
    answer: str
    reasoning: str


class TranscriptLike(Protocol):
    """`state.preference_data.JudgedTranscript`, or anything shaped like it."""

    id: str
    status: str
    exchanges: Sequence[tuple[str, str]]
    assessed: bool
    passed: bool
    answers: Sequence[AnswerLike]
    accepted_fixups: Sequence[FixupLike]
    pending_review: bool
    kept_exchanges: int | None


@dataclass(frozen=True)
class PreferencePair:
    prompt: tuple[dict[str, str], ...]  # system?, user, assistant, …, user: the conversation up to the reply
    chosen: str
    rejected: str
    transcript_id: str  # where the chosen reply is
    exchange: int  # the reply's exchange number (the prompt ends on its user message)
    source: Source
    reason: str  # fixup: the criterion or artifact it fixed; judged: the criteria the rejected reply failed
    rejected_transcript_id: str
    first_exchange: int = 1  # the first exchange still in the prompt (> 1 once trimmed to fit)
    token_count: int = 0


@dataclass(frozen=True)
class DroppedPair:
    transcript_id: str
    exchange: int
    token_count: int


@dataclass
class PairResult:
    pairs: list[PreferencePair] = field(default_factory=list)
    dropped: list[DroppedPair] = field(default_factory=list)
    trimmed: int = 0
    capped: int = 0  # pairs left out by max_per_context
    fixup_pairs: int = 0
    judged_pairs: int = 0
    contexts_shared: int = 0  # contexts that more than one transcript reached


def usable(t: TranscriptLike) -> int:
    """How many of `t`'s exchanges may give a chosen reply: 0 unless it passed with nothing pending."""
    if t.status != "passed" or not t.passed or t.pending_review:
        return 0
    n = len(t.exchanges)
    return min(n, t.kept_exchanges) if t.kept_exchanges is not None else n


def prompt_messages(system_prompt: str | None, exchanges: Sequence[tuple[str, str]], number: int) -> list[dict]:
    """The conversation up to reply `number` (1-based): system prompt, earlier exchanges, its user message."""
    messages: list[dict] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for user, assistant in exchanges[: number - 1]:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": exchanges[number - 1][0]})
    return messages


def failed_at(t: TranscriptLike) -> dict[int, list[str]]:
    """Exchange number → criteria a judge answered NO to, citing that exchange in its reasoning."""
    out: dict[int, list[str]] = {}
    for a in t.answers:
        if a.answer != "NO":
            continue
        for number in cited_exchanges(a.reasoning, len(t.exchanges)):
            if a.criterion not in out.setdefault(number, []):
                out[number].append(a.criterion)
    return out


def fixup_pairs(transcripts: Iterable[TranscriptLike], system_prompt: str | None) -> list[PreferencePair]:
    """(current reply, each original an accepted rewrite replaced) for exchanges that passed re-assessment."""
    pairs: list[PreferencePair] = []
    for t in transcripts:
        limit = usable(t)
        if not limit or not t.accepted_fixups:
            continue
        failing = {a.criterion for a in t.answers if a.answer not in ACCEPTABLE}
        by_exchange: dict[int, list[FixupLike]] = {}
        for f in t.accepted_fixups:
            by_exchange.setdefault(f.exchange, []).append(f)
        for number in sorted(by_exchange):
            fixes = by_exchange[number]
            if number > limit:
                continue
            chosen = t.exchanges[number - 1][1]
            if fixes[-1].proposed != chosen:
                continue  # the reply changed after its last accepted rewrite: not the version that was judged so
            if any(f.reason_kind == "criterion" and f.reason in failing for f in fixes):
                continue  # re-assessed, the criterion it was rewritten for still fails
            prompt = tuple(prompt_messages(system_prompt, t.exchanges, number))
            seen = {chosen}
            for f in fixes:
                if not f.original.strip() or f.original in seen:
                    continue
                seen.add(f.original)
                pairs.append(PreferencePair(prompt, chosen, f.original, t.id, number, "fixup", f.reason, t.id))
    return pairs


def _field(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(8, "big") + data  # length-prefixed: no two histories hash alike by concatenation


def context_keys(exchanges: Sequence[tuple[str, str]], end: int) -> list[str]:
    """For replies 1..`end`, a hash of everything before each: earlier exchanges whole, then its user message.

    One running hash over the transcript, so a long transcript costs its length, not its length squared.
    """
    running = hashlib.sha256()
    keys = []
    for user, assistant in exchanges[:end]:
        at = running.copy()
        at.update(_field(user))
        keys.append(at.hexdigest())
        running.update(_field(user) + _field(assistant))
    return keys


def judged_pairs(transcripts: Iterable[TranscriptLike], system_prompt: str | None) -> tuple[list[PreferencePair], int]:
    """Pairs of replies to one shared context, one judged good and one judged bad; and how many contexts were shared."""
    reached: dict[str, list[tuple[TranscriptLike, int]]] = {}
    failures: dict[str, dict[int, list[str]]] = {}
    for t in transcripts:
        if not t.assessed:
            continue
        failures[t.id] = failed_at(t)
        end = min(len(t.exchanges), t.kept_exchanges or len(t.exchanges))
        for number, key in enumerate(context_keys(t.exchanges, end), start=1):
            reached.setdefault(key, []).append((t, number))
    pairs: list[PreferencePair] = []
    shared = 0
    for key in sorted(reached):
        places = reached[key]
        if len({t.id for t, _ in places}) < 2:
            continue
        shared += 1
        good: dict[str, tuple[TranscriptLike, int]] = {}
        bad: dict[str, tuple[TranscriptLike, int, list[str]]] = {}
        for t, number in places:
            reply = t.exchanges[number - 1][1]
            failed = failures[t.id].get(number, [])
            if failed:
                bad.setdefault(reply, (t, number, failed))
            elif number <= usable(t):
                good.setdefault(reply, (t, number))
        for reply, (t, number) in sorted(good.items(), key=lambda kv: (kv[1][0].id, kv[1][1])):
            prompt = tuple(prompt_messages(system_prompt, t.exchanges, number))
            for worse, (other, _, failed) in sorted(bad.items(), key=lambda kv: (kv[1][0].id, kv[1][1])):
                if worse == reply or not worse.strip():
                    continue
                pairs.append(PreferencePair(prompt, reply, worse, t.id, number, "judged", ",".join(failed), other.id))
    return pairs, shared


def _rank(seed: int, pair: PreferencePair) -> str:
    return hashlib.sha256(f"{seed}\0{pair.chosen}\0{pair.rejected}".encode()).hexdigest()


def limit_per_context(
    pairs: Sequence[PreferencePair], max_per_context: int, seed: int
) -> tuple[list[PreferencePair], int]:
    """At most `max_per_context` pairs per prompt, the seed choosing which; (kept in input order, left out)."""
    if max_per_context < 1:
        raise ValueError("max_per_context must be at least 1")
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(tuple((m["role"], m["content"]) for m in p.prompt), []).append(i)
    keep: set[int] = set()
    for members in groups.values():
        keep.update(sorted(members, key=lambda i: _rank(seed, pairs[i]))[:max_per_context])
    return [p for i, p in enumerate(pairs) if i in keep], len(pairs) - len(keep)


def pair_tokens(counter: TokenCounter, prompt: Sequence[dict], chosen: str, rejected: str) -> int:
    """The longer of prompt+chosen and prompt+rejected, as the trainer's chat template renders them."""
    return max(
        counter.count_messages([*prompt, {"role": "assistant", "content": reply}]) for reply in (chosen, rejected)
    )


def fit_pair(
    pair: PreferencePair, counter: TokenCounter, max_tokens: int, over_limit: OverLimit
) -> tuple[PreferencePair | None, int]:
    """`pair` with its token count, trimmed to its most recent exchanges under `max_tokens` if allowed.

    Returns (the pair, or None when it cannot fit; its full token count).
    """
    full = pair_tokens(counter, pair.prompt, pair.chosen, pair.rejected)
    if full <= max_tokens:
        return replace(pair, token_count=full), full
    if over_limit == "drop":
        return None, full
    head = [m for m in pair.prompt[:1] if m["role"] == "system"]
    turns = list(pair.prompt[len(head) :])
    removed = 0
    while len(turns) > 1:  # drop the oldest exchange (a user message and its reply) until it fits
        turns, removed = turns[2:], removed + 1
        count = pair_tokens(counter, head + turns, pair.chosen, pair.rejected)
        if count <= max_tokens:
            return replace(pair, prompt=tuple(head + turns), first_exchange=1 + removed, token_count=count), full
    return None, full


def build_pairs(
    transcripts: Sequence[TranscriptLike],
    system_prompt: str | None,
    counter: TokenCounter,
    *,
    max_tokens: int,
    over_limit: OverLimit = "keep_recent",
    seed: int = 0,
    max_per_context: int = DEFAULT_MAX_PER_CONTEXT,
) -> PairResult:
    """Every pair the transcripts give, limited per context, counted and fitted to `max_tokens`, in a fixed order."""
    if over_limit not in ("keep_recent", "drop"):
        raise ValueError(f"over_limit must be keep_recent or drop, not {over_limit!r}")
    from_fixups = fixup_pairs(transcripts, system_prompt)
    from_judging, shared = judged_pairs(transcripts, system_prompt)
    found = sorted(
        from_fixups + from_judging,
        key=lambda p: (p.transcript_id, p.exchange, p.source, p.rejected_transcript_id, p.rejected),
    )
    limited, capped = limit_per_context(found, max_per_context, seed)
    result = PairResult(capped=capped, contexts_shared=shared)
    for pair in limited:
        fitted, full = fit_pair(pair, counter, max_tokens, over_limit)
        if fitted is None:
            result.dropped.append(DroppedPair(pair.transcript_id, pair.exchange, full))
            continue
        result.trimmed += fitted.first_exchange > 1
        result.pairs.append(fitted)
        if fitted.source == "fixup":
            result.fixup_pairs += 1
        else:
            result.judged_pairs += 1
    return result


def pair_record(pair: PreferencePair, *, pack: str | None, seed: int | None, tokenizer: str | None) -> dict:
    """TRL's conversational preference format, then the provenance keys (`PAIR_KEYS` order)."""
    record: dict = {
        "prompt": [dict(m) for m in pair.prompt],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
        "transcript_id": pair.transcript_id,
        "first_exchange": pair.first_exchange,
        "last_exchange": pair.exchange,
        "token_count": pair.token_count,
        "pack": pack,
        "slice_seed": seed,
        "tokenizer": tokenizer,
        "source": pair.source,
        "reason": pair.reason,
        "rejected_transcript_id": pair.rejected_transcript_id,
    }
    return {k: v for k, v in record.items() if v is not None}


def pair_line(pair: PreferencePair, *, pack: str | None = None, seed: int | None = None, tokenizer: str | None = None):
    """One JSONL line, compact and deterministic."""
    record = pair_record(pair, pack=pack, seed=seed, tokenizer=tokenizer)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
