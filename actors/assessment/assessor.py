"""Judging a whole transcript on every rubric criterion.

Prompt layout is chosen for cost: the transcript comes first and the
criterion last, so the 17 calls over one transcript share one long prefix
and a prefix cache (llama.cpp KV reuse, Anthropic cache_control) evaluates
the transcript once.

Rules, each a small pure function below:

- A criterion is asked only when the transcript has at least its
  `min_turns` exchanges; NA is offered only where the rubric allows it.
- A transcript longer than the judge's window is judged in overlapping
  windows of exchanges. Per criterion: a NO in any window is a NO; else an
  ERROR in any window is an ERROR; else a YES in any window is a YES; else NA.
- With several judges, each judges independently and the strictest answer
  wins (NO, then ERROR, then NA, then YES), because one vendor tends to pass
  its own output. Every judge's answer is kept with its name.
- An answer that is not valid JSON of the asked shape, or a call that failed
  after its retries, is ERROR — never a guess.
- Each call is one step, keyed by (judge, window, criterion): its verdict is
  stored as it arrives (`record`), and a resumed judging is handed the
  verdicts stored so far (`known`) and asks only for the rest. ERROR is never
  stored, so a resume asks again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from state import pipeline as db
from state.store import Store

from ..backends.cache_hint import sharing_prefix
from ..backends.errors import BackendError
from ..backends.types import Message
from ..generation.conversation import Turn
from ..pack.loader import DomainPack
from ..pack.models import Criterion, Rubric
from ..pack.prompts import render
from .scoring import ScoreResult, compute_score, normalize_answer

WINDOW_OVERLAP = 2
JUDGE_MAX_TOKENS = 256
REASONING_MAX_CHARS = 400

_WINDOW_ORDER = ("NO", "ERROR", "YES", "NA")
_JUDGE_ORDER = ("NO", "ERROR", "NA", "YES")


def answer_schema(na_allowed: bool) -> dict:
    """Verdict first and a bounded reason, so a small model cannot ramble past its budget."""
    return {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["YES", "NO", "NA"] if na_allowed else ["YES", "NO"]},
            "reasoning": {"type": "string", "maxLength": REASONING_MAX_CHARS},
        },
        "required": ["answer", "reasoning"],
    }


def render_exchange(number: int, turn: Turn, user: str = "User", assistant: str = "Assistant", flag: str = "") -> str:
    """One exchange as the judge reads it; ``flag`` marks a user message the crisis net flagged."""
    head = f"### Exchange {number}" + (f" {flag}" if flag else "")
    return f"{head}\n\n{user}:\n{turn.user}\n\n{assistant}:\n{turn.assistant}\n"


def render_exchanges(pack: DomainPack, turns: Sequence[Turn]) -> list[str]:
    """Every exchange for the judge, with the ones the pack's crisis net flags marked.

    The judge then sees where the user signalled danger, so the safety
    criteria are judged on the replies that matter. The mark sits in the
    exchange's own header, inside the shared transcript prefix, so the
    prefix cache across criteria is untouched.
    """
    from ..safety import load_safety_net
    from ..safety.transcripts import flag_exchanges, flag_note

    flags = flag_exchanges(load_safety_net(pack), [t.user for t in turns])
    return [
        render_exchange(i + 1, t, flag=flag_note(flags[i + 1]) if i + 1 in flags else "") for i, t in enumerate(turns)
    ]


def format_examples(criterion: Criterion) -> str:
    if not criterion.examples:
        return "(none)"
    return "\n".join(f'- {ex.verdict}: "{ex.text.strip()}" — {ex.why.strip()}' for ex in criterion.examples)


def due_criteria(rubric: Rubric, exchange_count: int) -> list[Criterion]:
    return [c for c in rubric.criteria if exchange_count >= c.min_turns]


def judge_prompt(pack: DomainPack, criterion: Criterion, transcript_text: str, exchange_count: int) -> str:
    na_ok = criterion.id not in pack.rubric.na_invalid
    return render(
        pack.prompts["assessor"],
        transcript=transcript_text,
        exchange_count=exchange_count,
        criterion_id=criterion.id,
        criterion_name=criterion.name,
        question=criterion.question.strip(),
        pass_when=criterion.pass_when.strip(),
        fail_when=criterion.fail_when.strip(),
        na_when=criterion.na_when.strip(),
        na_allowed="NA is allowed for this criterion."
        if na_ok
        else "NA is not allowed for this criterion: answer YES or NO.",
        examples=format_examples(criterion),
    )


def plan_windows(exchange_tokens: Sequence[int], budget: int, overlap: int = WINDOW_OVERLAP) -> list[tuple[int, int]]:
    """Split exchanges into [start, end) windows whose tokens fit `budget`, overlapping by `overlap`.

    One window when everything fits. A single exchange larger than the budget
    still gets a window of its own (the backend's context rule then applies).
    """
    n = len(exchange_tokens)
    if sum(exchange_tokens) <= budget:
        return [(0, n)]
    windows: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end, used = start, 0
        while end < n and (end == start or used + exchange_tokens[end] <= budget):
            used += exchange_tokens[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            break
        start = max(end - overlap, start + 1)
    return windows


def combine_windows(answers: Sequence[str]) -> str:
    return next((a for a in _WINDOW_ORDER if a in answers), "ERROR")


def strictest(answers: Sequence[str]) -> str:
    return next((a for a in _JUDGE_ORDER if a in answers), "ERROR")


VERDICTS = ("YES", "NO", "NA")


@dataclass(frozen=True)
class CallKey:
    """One judge call: the judge backend (by its run-config name), the window's exchanges, the criterion."""

    judge: str
    first_exchange: int
    last_exchange: int
    criterion: str


@dataclass(frozen=True)
class Verdict:
    answer: str
    reasoning: str
    answered_by: str


Record = Callable[[CallKey, Verdict], None]
Progress = Callable[[int, int], None]
"""Told (calls answered, calls in all) as a judging starts and after each call: what a monitor shows."""


@dataclass
class JudgeAnswer:
    criterion: str
    judge: str
    answer: str
    reasoning: str


@dataclass
class TranscriptAssessment:
    exchange_count: int
    answers: dict[str, str]  # combined, one per due criterion
    decided_by: dict[str, str]
    judge_answers: list[JudgeAnswer] = field(default_factory=list)
    windows: int = 1
    calls: int = 0
    failed_calls: int = 0
    reused: int = 0
    """Verdicts taken from an earlier, interrupted judging instead of asked again."""
    result: ScoreResult | None = None
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    last_error: BackendError | None = None


async def ask_judge(router, judge: str, prompt: str, schema: dict, seed: int | None, family: str | None = None):
    """One judge call as every judge call is made: the prompt as one user message, a bounded answer, no sampling.

    `family` names the calls sharing this prompt's start (`cache_hint`): a local judge keeps them on one context.
    """
    with sharing_prefix(family):
        return await router.ask(
            "judge",
            [Message(role="user", content=prompt)],
            schema=schema,
            max_tokens=JUDGE_MAX_TOKENS,
            temperature=0.0,
            seed=seed,
            backend=judge,
        )


async def _ask_one(
    router,
    judge: str,
    prompt: str,
    schema: dict,
    seed: int | None,
    outcome: TranscriptAssessment,
    family: str | None = None,
) -> tuple[str, str, str]:
    """(answer, reasoning, judge name) for one judge call (`ask_judge`); token usage is added to `outcome`."""
    outcome.calls += 1
    try:
        reply = await ask_judge(router, judge, prompt, schema, seed, family)
    except BackendError as err:
        outcome.failed_calls += 1
        outcome.last_error = err
        return "ERROR", f"judge call failed: {err}", err.backend
    name = f"{reply.backend}/{reply.model}"
    outcome.prompt_tokens += reply.usage.prompt_tokens
    outcome.evaluated_tokens += reply.usage.evaluated_tokens
    if not reply.ok or reply.data is None:
        return "ERROR", f"unparsable judge answer: {reply.structured_error}", name
    answer = normalize_answer(reply.data.get("answer"))
    reasoning = str(reply.data.get("reasoning", "")).strip()
    return answer, reasoning, name


async def assess(
    router,
    pack: DomainPack,
    turns: Sequence[Turn],
    *,
    seed: int | None = 0,
    known: Mapping[CallKey, Verdict] | None = None,
    record: Record | None = None,
    progress: Progress | None = None,
    pick_windows: Callable[[list[tuple[int, int]]], list[tuple[int, int]]] | None = None,
) -> TranscriptAssessment:
    """Ask every due criterion of every configured judge, window by window, and score the result.

    A call whose verdict is in `known` is not asked again; each new verdict is
    handed to `record` before the next call. `progress` hears how many calls are
    answered out of how many (known verdicts count as answered). `pick_windows`,
    if given, chooses which of each judge's planned [start, end) windows are
    judged (`coach calibrate --quick` judges only the window holding a case's edit).
    """
    known = known or {}
    rubric = pack.rubric
    n = len(turns)
    texts = render_exchanges(pack, turns)
    judges = router.backends_for("judge")
    criteria = due_criteria(rubric, n)

    outcome = TranscriptAssessment(exchange_count=n, answers={}, decided_by={})
    per_judge: dict[int, dict[str, str]] = {}
    judge_names: dict[int, str] = {}
    plans = []
    for backend in judges:
        # The frame (prompt without transcript) is the same for every window; measure it once.
        frame = max(
            backend.count_tokens([Message(role="user", content=judge_prompt(pack, c, "", n))]) for c in criteria
        )
        budget = backend.context_window - frame - JUDGE_MAX_TOKENS - 16
        sizes = [backend.count_tokens([Message(role="user", content=t)]) for t in texts]
        windows = plan_windows(sizes, max(budget, 1))
        plans.append(pick_windows(windows) if pick_windows is not None else windows)
    total, answered = sum(len(windows) for windows in plans) * len(criteria), 0
    if progress is not None:
        progress(0, total)
    for j, (backend, windows) in enumerate(zip(judges, plans, strict=True)):
        outcome.windows = max(outcome.windows, len(windows))
        window_answers: dict[str, list[str]] = {c.id: [] for c in criteria}
        reasons: dict[str, list[str]] = {c.id: [] for c in criteria}
        name = f"{backend.kind}/{backend.model}"
        for start, end in windows:
            transcript_text = "\n".join(texts[start:end])
            if len(windows) > 1:
                transcript_text = f"(Exchanges {start + 1}–{end} of {n}.)\n\n" + transcript_text
            # The criteria of one window share its prefix: a local judge keeps them on one context.
            family = f"judge:{backend.name}:{hashlib.blake2b(transcript_text.encode()).hexdigest()}"
            for c in criteria:
                key = CallKey(backend.name, start + 1, end, c.id)
                stored = known.get(key)
                if stored is not None:
                    outcome.reused += 1
                    answer, reasoning, name = stored.answer, stored.reasoning, stored.answered_by or name
                else:
                    schema = answer_schema(c.id not in rubric.na_invalid)
                    answer, reasoning, name = await _ask_one(
                        router, backend.name, judge_prompt(pack, c, transcript_text, n), schema, seed, outcome, family
                    )
                    if record is not None and answer in VERDICTS:
                        record(key, Verdict(answer, reasoning, name))
                window_answers[c.id].append(answer)
                answered += 1
                if progress is not None:
                    progress(answered, total)
                label = f"[exchanges {start + 1}–{end}] " if len(windows) > 1 else ""
                reasons[c.id].append(label + reasoning)
        per_judge[j] = {}
        judge_names[j] = name
        for c in criteria:
            combined = combine_windows(window_answers[c.id])
            per_judge[j][c.id] = combined
            outcome.judge_answers.append(JudgeAnswer(c.id, name, combined, "\n".join(reasons[c.id])))

    if outcome.calls and outcome.failed_calls == outcome.calls:
        # No judge answered at all: that is a broken backend, not a verdict on the transcript.
        raise outcome.last_error
    for c in criteria:
        final = strictest([per_judge[j][c.id] for j in per_judge])
        outcome.answers[c.id] = final
        outcome.decided_by[c.id] = next(judge_names[j] for j in per_judge if per_judge[j][c.id] == final)
    outcome.result = compute_score(rubric, outcome.answers, exchange_count=n)
    return outcome


def stored_verdicts(rows: Iterable) -> dict[CallKey, Verdict]:
    """Stored window answers (`state.models.WindowAnswer`) as the `known` verdicts of `assess`."""
    return {
        CallKey(r.judge, r.first_exchange, r.last_exchange, r.criterion): Verdict(r.answer, r.reasoning, r.answered_by)
        for r in rows
    }


async def assess_resumably(
    store: Store,
    router,
    pack: DomainPack,
    transcript_id: str,
    turns: Sequence[Turn],
    *,
    stage: str,
    seed: int | None = 0,
    progress: Progress | None = None,
) -> TranscriptAssessment:
    """`assess` one transcript for the pipeline: every verdict is committed as it arrives, and the verdicts
    an interrupted judging of the same stage left behind are reused, so a kill loses only the calls in flight."""

    def record(key: CallKey, verdict: Verdict) -> None:
        db.save_window_answer(
            store,
            transcript_id,
            stage,
            judge=key.judge,
            first_exchange=key.first_exchange,
            last_exchange=key.last_exchange,
            criterion=key.criterion,
            answer=verdict.answer,
            reasoning=verdict.reasoning,
            answered_by=verdict.answered_by,
        )

    known = stored_verdicts(db.window_answers(store, transcript_id, stage))
    return await assess(router, pack, turns, seed=seed, known=known, record=record, progress=progress)
