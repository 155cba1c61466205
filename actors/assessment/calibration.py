"""Assessor calibration: does the judge catch failures it must catch, and spare what it must spare?

The cases are data in the domain pack (`calibration:` in pack.yaml), never
prose in code; the file's shape, its checks and its reading are the pack's
(`actors.pack.calibration_cases`). One file holds:

- a pool of good exchanges from one persona's continuing story, cycled when a
  case is longer than the pool, so every case is a long, realistic
  conversation (failures hide in exchange 23 of 32, not in a two-line toy);
- cases, each the clean conversation plus edits: `replace` swaps the user
  message and/or the reply at given exchanges (a dropped topic, a diagnosis,
  a missed crisis signal); `transform` rewrites every reply in a range (a
  stock opener prepended, a question appended), for failures that are
  patterns across turns. Each case lists the criteria that must FAIL and
  those that must PASS.

Pure parts: `build_cases` and `score_calibration`. One async part:
`run_calibration`, which asks the configured judge through `assess` — only the criteria a case is about, since
each criterion is its own judge call and asking the others would change
nothing but the cost.

Scoring rules (per criterion):

- caught: a must-fail case where the judge said NO. NA is not caught; ERROR
  (an unparsable answer or a failed call) is not caught and is counted.
- spared: a must-pass case whose answer passes under the rubric's rule: YES,
  or NA where the rubric allows NA. NO is a false alarm; ERROR is neither
  spared nor a false alarm and is counted, so a judge that only errors
  never looks as if it spared everything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from state.errors import CoachError

from ..backends.errors import BackendError
from ..backends.types import Message
from ..generation.conversation import Turn
from ..pack.calibration_cases import CalibrationData, ends_with_question
from ..pack.domain_pack import DomainPack
from .assessor import JUDGE_MAX_TOKENS, assess, due_criteria, judge_prompt, plan_windows, render_exchanges

# --- building cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationCase:
    name: str
    description: str
    turns: list[Turn]
    must_fail: list[str]
    must_pass: list[str]
    buried_at: int | None
    """The first exchange an edit touches (None for the clean conversation)."""
    edited: list[int] = field(default_factory=list)
    """Every exchange an edit changed, in order."""
    kind: str = "clean"
    """"buried" (edits that replace messages), "pattern" (edits that rewrite a range of replies) or "clean"."""
    focused: bool = False
    """Judge only the window holding the most edits (`--quick`), not every window of the conversation."""

    @property
    def criteria(self) -> list[str]:
        return [*self.must_fail, *self.must_pass]


def build_cases(pack: DomainPack, data: CalibrationData) -> list[CalibrationCase]:
    """Every case as a conversation plus its expectations. Pure; `data` must be valid for `pack`."""
    order = pack.rubric.ids
    base = [data.pool[i % len(data.pool)] for i in range(data.exchanges)]
    cases = []
    for spec in data.cases:
        users = [p.user.strip() for p in base]
        replies = [p.assistant.strip() for p in base]
        edited: set[int] = set()
        for r in spec.replace:
            if r.user is not None:
                users[r.exchange - 1] = r.user.strip()
            if r.assistant is not None:
                replies[r.exchange - 1] = r.assistant.strip()
            edited.add(r.exchange)
        for t in spec.transform:
            appends = [a.strip() for a in t.append]
            for k, pos in enumerate(t.positions(data.exchanges)):
                reply = replies[pos - 1]
                if t.prepend:
                    reply = f"{t.prepend[k % len(t.prepend)].strip()}\n\n{reply}"
                if (appends or t.append_own_question) and not ends_with_question(reply):
                    tail = appends[k % len(appends)] if appends else base[pos - 1].question
                    if tail:
                        reply = f"{reply} {tail.strip()}"
                if reply != replies[pos - 1]:
                    replies[pos - 1] = reply
                    edited.add(pos)
        must_fail = [c for c in order if c in spec.must_fail]
        if spec.must_pass == "all":  # every criterion judged at this length
            must_pass = [
                c.id for c in pack.rubric.criteria if c.id not in spec.must_fail and c.min_turns <= data.exchanges
            ]
        else:
            must_pass = [c for c in order if c in spec.must_pass]
        cases.append(
            CalibrationCase(
                name=spec.name,
                description=" ".join(spec.description.split()),
                turns=[Turn(u, a) for u, a in zip(users, replies, strict=True)],
                must_fail=must_fail,
                must_pass=must_pass,
                buried_at=min(edited) if edited else None,
                edited=sorted(edited),
                kind="pattern" if spec.transform else "buried" if spec.replace else "clean",
            )
        )
    return cases


def select_cases(
    cases: Sequence[CalibrationCase], names: Collection[str] | None = None, criteria: Collection[str] | None = None
) -> list[CalibrationCase]:
    """The named cases (all when None), each narrowed to `criteria` (all when None); empty ones dropped.

    Raises CoachError naming any unknown case name.
    """
    if names:
        known = {c.name for c in cases}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CoachError(
                f"unknown calibration case(s) {', '.join(unknown)}; cases: {', '.join(c.name for c in cases)}"
            )
        cases = [c for c in cases if c.name in names]
    if criteria is None:
        return list(cases)
    out = []
    for c in cases:
        narrowed = dataclasses.replace(
            c, must_fail=[x for x in c.must_fail if x in criteria], must_pass=[x for x in c.must_pass if x in criteria]
        )
        if narrowed.criteria:
            out.append(narrowed)
    return out


QUICK_MUST_FAIL = 2
"""`--quick`: this many cases with planted failures: one of each kind (buried, pattern), then file order."""
QUICK_MUST_PASS = 1
"""`--quick`: this many near misses on those same criteria (cases that must pass only them first)."""


def quick_cases(cases: Sequence[CalibrationCase], *, safety_gates: Collection[str] = ()) -> list[CalibrationCase]:
    """The quick calibration: a planted failure of each kind and a near miss, each on its criteria and one window.

    Why so few: on the embedded judge, reading one 8K-token window costs
    minutes on two cores, so a quick look must read about two.

    `QUICK_MUST_FAIL` cases with must-fail criteria, narrowed to those
    criteria: one of each kind (a buried failure, a pattern across replies) —
    within a kind, the first that plants a `safety_gates` failure, else the
    first — then others in file order; then up to `QUICK_MUST_PASS` cases with
    no must-fail criterion that must pass some of them, narrowed to those:
    targeted near misses (every must-pass criterion among them) before broad
    ones such as the clean conversation, file order within each. Each is
    `focused`: only the window holding its edits is judged, since a must-fail
    verdict is the NO of the window that holds the failure (a clean window's NO
    would be caught for the wrong reason) and a near miss is about its edit —
    false alarms on clean windows are the full run's `clean` case. For the
    bundled pack: diagnosis (CQ8, buried at 28), formulaic-openers (CP4, a
    pattern from 21) and own-label-mirrored (CQ8, the near miss at 28): three
    verdicts, three windows, judged latest edit first (see below), against 30
    windows for the full run and 12 for the quick run before.
    """
    planted = [c for c in cases if c.must_fail]
    gated = [c for c in planted if set(c.must_fail) & set(safety_gates)]
    picked: list[str] = []
    for kind in dict.fromkeys(c.kind for c in planted):  # one of each kind, in the order kinds first appear
        picked.append(next(c for c in [*gated, *planted] if c.kind == kind).name)
    picked += [c.name for c in planted if c.name not in picked][: max(0, QUICK_MUST_FAIL - len(picked))]
    failing = [dataclasses.replace(c, must_pass=[], focused=True) for c in planted if c.name in picked]
    criteria = {cid for c in failing for cid in c.must_fail}
    near = [c for c in cases if not c.must_fail and criteria & set(c.must_pass)]
    near.sort(key=lambda c: not set(c.must_pass) <= criteria)  # stable: file order within each group
    sparing = [
        dataclasses.replace(c, must_pass=[x for x in c.must_pass if x in criteria], focused=bool(c.edited))
        for c in near[:QUICK_MUST_PASS]
    ]
    by_name = {c.name: c for c in [*failing, *sparing]}
    chosen = [by_name[c.name] for c in cases if c.name in by_name]
    # Latest edit first: the focused windows hold the same conversation up to each case's first edit, so a
    # local judge's prefix cache reads only what follows it.
    return sorted(chosen, key=lambda c: -(c.buried_at or 0))


def focus_window(case: CalibrationCase) -> Callable[[list[tuple[int, int]]], list[tuple[int, int]]] | None:
    """For a `focused` case: keep the [start, end) window holding the most of its edits (the later on a tie)."""
    if not case.focused or not case.edited:
        return None

    def pick(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
        held = [sum(start < e <= end for e in case.edited) for start, end in windows]
        best = max(range(len(windows)), key=lambda i: (held[i], i))
        return [windows[best]]

    return pick


def judged_pack(pack: DomainPack, criteria: Collection[str]) -> DomainPack:
    """The pack with its rubric narrowed to `criteria`, so `assess` asks only those."""
    rubric = pack.rubric.model_copy(update={"criteria": [c for c in pack.rubric.criteria if c.id in criteria]})
    return dataclasses.replace(pack, rubric=rubric)


# --- planning (an estimate of the judge's work) -----------------------------------------------


def planned_calls(router, pack: DomainPack, case: CalibrationCase) -> tuple[int, int]:
    """(windows, judge calls) that `assess` will make for `case`, summed over the configured judges.

    Mirrors the windowing in `actors.assessment.assessor.assess`: the same prompt
    frame, budget and `plan_windows`. May load a local model's tokenizer.
    """
    narrowed = judged_pack(pack, case.criteria)
    n = len(case.turns)
    criteria = due_criteria(narrowed.rubric, n)
    texts = render_exchanges(narrowed, case.turns)
    windows = calls = 0
    for backend in router.backends_for("judge"):
        frame = max(
            backend.count_tokens([Message(role="user", content=judge_prompt(narrowed, c, "", n))]) for c in criteria
        )
        budget = backend.context_window - frame - JUDGE_MAX_TOKENS - 16
        sizes = [backend.count_tokens([Message(role="user", content=t)]) for t in texts]
        planned = plan_windows(sizes, max(budget, 1))
        pick = focus_window(case)
        w = len(pick(planned) if pick is not None else planned)
        windows = max(windows, w)
        calls += w * len(criteria)
    return windows, calls


# --- running --------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: str
    must_fail: list[str]
    must_pass: list[str]
    answers: dict[str, str]
    """criterion -> YES/NO/NA/ERROR, combined over windows and judges."""
    exchanges: int = 0
    buried_at: int | None = None
    windows: int = 0
    calls: int = 0
    failed_calls: int = 0
    elapsed_s: float = 0.0
    reasons: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """criterion -> [{judge, answer, reasoning}] for every judge."""
    error: str | None = None
    """Set when no judge call of the case succeeded (every answer is then ERROR)."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


async def run_calibration(
    router,
    pack: DomainPack,
    cases: Sequence[CalibrationCase],
    *,
    seed: int | None = 0,
    on_start: Callable[[int, CalibrationCase], None] | None = None,
    on_done: Callable[[int, CalibrationCase, CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Judge every case on its own criteria, one case at a time (the judge's own concurrency applies within).

    A case where every judge call fails is recorded with ERROR answers and
    the error; if that happens before any case got an answer, the backend is
    broken rather than the case, and the BackendError is raised.
    """
    results: list[CaseResult] = []
    answered = False
    for i, case in enumerate(cases):
        if on_start:
            on_start(i, case)
        started = time.monotonic()
        result = CaseResult(
            case=case.name,
            must_fail=list(case.must_fail),
            must_pass=list(case.must_pass),
            answers={},
            exchanges=len(case.turns),
            buried_at=case.buried_at,
        )
        try:
            outcome = await assess(
                router, judged_pack(pack, case.criteria), case.turns, seed=seed, pick_windows=focus_window(case)
            )
        except BackendError as err:
            if not answered:
                raise
            result.answers = {c: "ERROR" for c in case.criteria}
            result.error = str(err)
        else:
            answered = True
            result.answers = {c: outcome.answers.get(c, "ERROR") for c in case.criteria}
            result.windows, result.calls, result.failed_calls = outcome.windows, outcome.calls, outcome.failed_calls
            for ja in outcome.judge_answers:
                result.reasons.setdefault(ja.criterion, []).append(
                    {"judge": ja.judge, "answer": ja.answer, "reasoning": ja.reasoning}
                )
        result.elapsed_s = time.monotonic() - started
        results.append(result)
        if on_done:
            on_done(i, case, result)
    return results


# --- scoring --------------------------------------------------------------------------------


@dataclass
class CriterionScore:
    criterion: str
    must_fail: int = 0
    caught: int = 0
    fail_na: int = 0
    fail_errors: int = 0
    missed: list[str] = field(default_factory=list)
    """Must-fail cases the judge did not catch (YES, NA or ERROR)."""
    must_pass: int = 0
    spared: int = 0
    pass_errors: int = 0
    false_alarms: list[str] = field(default_factory=list)
    """Must-pass cases the judge penalized (NO, or NA where the rubric forbids NA)."""

    @property
    def caught_rate(self) -> float | None:
        return self.caught / self.must_fail if self.must_fail else None

    @property
    def spared_rate(self) -> float | None:
        return self.spared / self.must_pass if self.must_pass else None

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["caught_rate"] = self.caught_rate
        out["spared_rate"] = self.spared_rate
        return out


@dataclass
class CalibrationScore:
    criteria: list[CriterionScore]

    def _total(self, key: str) -> int:
        return sum(getattr(c, key) for c in self.criteria)

    @property
    def caught_rate(self) -> float | None:
        total = self._total("must_fail")
        return self._total("caught") / total if total else None

    @property
    def spared_rate(self) -> float | None:
        total = self._total("must_pass")
        return self._total("spared") / total if total else None

    @property
    def errors(self) -> int:
        return self._total("fail_errors") + self._total("pass_errors")

    def as_dict(self) -> dict:
        return {
            "caught_rate": self.caught_rate,
            "spared_rate": self.spared_rate,
            "must_fail": self._total("must_fail"),
            "caught": self._total("caught"),
            "must_pass": self._total("must_pass"),
            "spared": self._total("spared"),
            "errors": self.errors,
            "criteria": [c.as_dict() for c in self.criteria],
        }


def score_calibration(
    results: Sequence[CaseResult], *, na_invalid: Collection[str] = (), order: Sequence[str] = ()
) -> CalibrationScore:
    """Per criterion: how many must-fail cases were caught and how many must-pass cases spared.

    `na_invalid`: criteria where the rubric does not allow NA (an NA there is
    penalized, so it is not spared). `order`: criterion order of the table
    (the rubric's); criteria not in it follow in first-seen order.
    """
    rows: dict[str, CriterionScore] = {}

    def row(cid: str) -> CriterionScore:
        if cid not in rows:
            rows[cid] = CriterionScore(cid)
        return rows[cid]

    for r in results:
        for cid in r.must_fail:
            s = row(cid)
            answer = r.answers.get(cid, "ERROR")
            s.must_fail += 1
            if answer == "NO":
                s.caught += 1
                continue
            s.missed.append(r.case)
            if answer == "NA":
                s.fail_na += 1
            elif answer != "YES":
                s.fail_errors += 1
        for cid in r.must_pass:
            s = row(cid)
            answer = r.answers.get(cid, "ERROR")
            s.must_pass += 1
            if answer == "YES" or (answer == "NA" and cid not in na_invalid):
                s.spared += 1
            elif answer in ("NO", "NA"):
                s.false_alarms.append(r.case)
            else:
                s.pass_errors += 1
    rank = {cid: i for i, cid in enumerate(order)}
    ordered = sorted(rows.values(), key=lambda s: rank.get(s.criterion, len(rank)))
    return CalibrationScore(ordered)


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def format_table(score: CalibrationScore) -> str:
    """The per-criterion table as plain text."""

    def row(
        name: str,
        caught: int,
        must_fail: int,
        c_rate,
        spared: int,
        must_pass: int,
        s_rate,
        errors: int,
        notes: str = "",
    ) -> str:
        c = f"{caught}/{must_fail}" if must_fail else "—"
        p = f"{spared}/{must_pass}" if must_pass else "—"
        return f"{name:<10} {c:>7} {_pct(c_rate):>5}  {p:>7} {_pct(s_rate):>5}  {errors:>6}  {notes}".rstrip()

    header = f"{'criterion':<10} {'caught':>7} {'rate':>5}  {'spared':>7} {'rate':>5}  {'errors':>6}  notes"
    lines = [header, "-" * len(header)]
    for s in score.criteria:
        notes = []
        if s.missed:
            notes.append("missed: " + ", ".join(s.missed))
        if s.false_alarms:
            notes.append("false alarm: " + ", ".join(s.false_alarms))
        lines.append(
            row(
                s.criterion,
                s.caught,
                s.must_fail,
                s.caught_rate,
                s.spared,
                s.must_pass,
                s.spared_rate,
                s.fail_errors + s.pass_errors,
                "; ".join(notes),
            )
        )
    lines.append("-" * len(header))
    lines.append(
        row(
            "overall",
            score._total("caught"),
            score._total("must_fail"),
            score.caught_rate,
            score._total("spared"),
            score._total("must_pass"),
            score.spared_rate,
            score.errors,
        )
    )
    return "\n".join(lines)


def calibration_report(
    pack: DomainPack,
    cases: Sequence[CalibrationCase],
    results: Sequence[CaseResult],
    score: CalibrationScore,
    *,
    judges: Sequence[str],
    source: str,
) -> dict:
    """The JSON report: what was judged, by whom, and how it went."""
    return {
        "kind": "assessor_calibration",
        "pack": pack.name,
        "rubric_version": pack.rubric.version,
        "calibration_file": source,
        "judges": list(judges),
        "rules": {
            "caught": "must-fail case where the judge answered NO; NA and ERROR are not caught",
            "spared": "must-pass case whose answer passes under the rubric (YES, or NA where NA is allowed); "
            "ERROR is neither spared nor a false alarm",
        },
        "summary": score.as_dict(),
        "cases": [
            {**r.as_dict(), "description": c.description, "edited_exchanges": c.edited}
            for c, r in zip(cases, results, strict=True)
        ],
    }
