"""Assessor calibration: does the judge catch failures it must catch, and spare what it must spare?

The cases are data in the domain pack (`calibration:` in pack.yaml), never
prose in code. One file holds:

- a pool of good exchanges from one persona's continuing story, cycled when a
  case is longer than the pool, so every case is a long, realistic
  conversation (failures hide in exchange 23 of 32, not in a two-line toy);
- cases, each the clean conversation plus edits: `replace` swaps the user
  message and/or the reply at given exchanges (a dropped topic, a diagnosis,
  a missed crisis signal); `transform` rewrites every reply in a range (a
  stock opener prepended, a question appended), for failures that are
  patterns across turns. Each case lists the criteria that must FAIL and
  those that must PASS.

Pure parts: validation (`calibration_problems`), `build_cases`, and
`score_calibration`. One async part: `run_calibration`, which asks the
configured judge through `assess` — only the criteria a case is about, since
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
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.errors import CoachError

from .assessment import JUDGE_MAX_TOKENS, assess, due_criteria, judge_prompt, plan_windows, render_exchange
from .backends.errors import BackendError
from .backends.types import Message
from .conversation import Turn
from .pack.loader import DomainPack, _display, _field_path
from .pack.problems import Problem
from .pack.yaml_io import YamlProblem, load_yaml

CASE_NAME = r"^[a-z0-9][a-z0-9-]*$"


# --- the file's shape -----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CalibrationPersona(_Model):
    name: str = Field(min_length=1)
    summary: str = ""


class PoolExchange(_Model):
    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)
    question: str | None = None
    """A closing question specific to this reply, used by `transform.append_own_question`."""


class Replacement(_Model):
    exchange: int = Field(ge=1)
    user: str | None = None
    assistant: str | None = None


class Transform(_Model):
    """Rewrite the replies of exchanges `from`..`to` (every `every`-th one).

    `prepend` texts (cycled) go before the reply, separated by a blank line;
    `append` texts (cycled) or the pool exchange's own `question` go after it,
    but only on replies that do not already end with a question mark, so no
    reply ends in two stacked questions.
    """

    start: int = Field(alias="from", ge=1)
    to: int | None = Field(default=None, ge=1)
    every: int = Field(default=1, ge=1)
    prepend: list[str] = []
    append: list[str] = []
    append_own_question: bool = False


class CaseSpec(_Model):
    name: str = Field(pattern=CASE_NAME)
    description: str = ""
    must_fail: list[str] = []
    must_pass: list[str] | Literal["all"] = []
    """Criterion ids, or "all": every rubric criterion not in must_fail."""
    replace: list[Replacement] = []
    transform: list[Transform] = []


class CalibrationData(_Model):
    version: int = Field(default=1, ge=1)
    persona: CalibrationPersona
    exchanges: int = Field(ge=1)
    """Length of every case in exchanges; the pool is cycled when it is shorter."""
    pool: list[PoolExchange] = Field(min_length=1)
    cases: list[CaseSpec] = Field(min_length=1)


class CalibrationError(CoachError):
    def __init__(self, file: str, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"calibration file {file} has {len(problems)} problem(s):\n{lines}")


# --- validation -----------------------------------------------------------------------------


def _ends_with_question(text: str) -> bool:
    return text.rstrip().rstrip("*_\"')”’").endswith("?")


def _transform_positions(t: Transform, exchanges: int) -> list[int]:
    end = min(t.to or exchanges, exchanges)
    return list(range(t.start, end + 1, t.every))


def calibration_problems(data: CalibrationData, pack: DomainPack, file: str) -> list[Problem]:
    """Everything wrong with `data` against `pack`'s rubric; empty when it can be built and judged."""
    rubric = pack.rubric
    known = rubric.ids
    n = data.exchanges
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for i, case in enumerate(data.cases):
        where = f"cases[{i}] ({case.name})"
        if case.name in seen:
            out.append(Problem(file, f"{where}.name", f"duplicate case name (first at cases[{seen[case.name]}])"))
        seen.setdefault(case.name, i)

        listed = [("must_fail", case.must_fail)]
        if case.must_pass != "all":
            listed.append(("must_pass", case.must_pass))
        for key, ids in listed:
            for j, cid in enumerate(ids):
                if cid not in known:
                    out.append(Problem(file, f"{where}.{key}[{j}]",
                                       f"unknown criterion {cid!r} (the rubric has {', '.join(known)})"))
                elif rubric.criterion(cid).min_turns > n:
                    out.append(Problem(file, f"{where}.{key}[{j}]",
                                       f"{cid} is only judged from {rubric.criterion(cid).min_turns} exchanges; "
                                       f"cases have {n}"))
            for cid in sorted({c for c in ids if ids.count(c) > 1}):
                out.append(Problem(file, f"{where}.{key}", f"{cid} is listed twice"))
        if case.must_pass != "all":
            for cid in sorted(set(case.must_fail) & set(case.must_pass)):
                out.append(Problem(file, where, f"{cid} is in both must_fail and must_pass"))
        if not case.must_fail and not case.must_pass:
            out.append(Problem(file, where, "lists no criterion: give must_fail and/or must_pass"))
        if case.must_fail and not case.replace and not case.transform:
            out.append(Problem(file, where, "has must_fail criteria but no replace or transform: "
                                            "nothing is injected, so the clean conversation would have to fail"))

        counts: dict[int, int] = {}
        for j, r in enumerate(case.replace):
            rw = f"{where}.replace[{j}]"
            counts[r.exchange] = counts.get(r.exchange, 0) + 1
            if r.exchange > n:
                out.append(Problem(file, f"{rw}.exchange",
                                   f"exchange {r.exchange} is beyond the conversation's length ({n} exchanges)"))
            if r.user is None and r.assistant is None:
                out.append(Problem(file, rw, "replaces nothing: give user and/or assistant"))
            for key in ("user", "assistant"):
                value = getattr(r, key)
                if value is not None and not value.strip():
                    out.append(Problem(file, f"{rw}.{key}", "must not be empty"))
        for ex, count in sorted(counts.items()):
            if count > 1:
                out.append(Problem(file, f"{where}.replace", f"exchange {ex} is replaced {count} times"))

        for j, t in enumerate(case.transform):
            tw = f"{where}.transform[{j}]"
            if t.start > n:
                out.append(Problem(file, f"{tw}.from",
                                   f"exchange {t.start} is beyond the conversation's length ({n} exchanges)"))
            if t.to is not None and t.to < t.start:
                out.append(Problem(file, f"{tw}.to", f"ends ({t.to}) before it starts ({t.start})"))
            if t.to is not None and t.to > n:
                out.append(Problem(file, f"{tw}.to",
                                   f"exchange {t.to} is beyond the conversation's length ({n} exchanges)"))
            if not (t.prepend or t.append or t.append_own_question):
                out.append(Problem(file, tw, "changes nothing: give prepend, append or append_own_question"))
            if t.append and t.append_own_question:
                out.append(Problem(file, tw, "give append or append_own_question, not both"))
            for key in ("prepend", "append"):
                for k, text in enumerate(getattr(t, key)):
                    if not text.strip():
                        out.append(Problem(file, f"{tw}.{key}[{k}]", "must not be empty"))
            if t.append_own_question:
                lacking = sorted({(pos - 1) % len(data.pool) for pos in _transform_positions(t, n)
                                  if data.pool[(pos - 1) % len(data.pool)].question is None
                                  and not _ends_with_question(data.pool[(pos - 1) % len(data.pool)].assistant)})
                for idx in lacking:
                    out.append(Problem(file, f"pool[{idx}].question",
                                       f"missing, but {where} appends each reply's own question"))
    return out


def _parse(path: Path, pack: DomainPack) -> tuple[CalibrationData | None, list[Problem]]:
    shown = _display(path)
    if not path.is_file():
        return None, [Problem(shown, "", "file is missing")]
    try:
        raw = load_yaml(path)
    except YamlProblem as err:
        return None, [Problem(shown, f"line {err.line}" if err.line else "", err.message)]
    if raw is None:
        return None, [Problem(shown, "", "file is empty")]
    try:
        data = CalibrationData.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            message = e["msg"]
            if e["type"] == "extra_forbidden":
                message = "unknown field (check its spelling)"
            elif e["type"] == "missing":
                message = "required field is missing"
            problems.append(Problem(shown, _field_path(e["loc"], raw), message))
        return None, problems
    return data, calibration_problems(data, pack, shown)


def calibration_path(pack: DomainPack, path: Path | str | None = None) -> Path:
    """The calibration file: `path` when given, else the one the pack's manifest names."""
    if path is not None:
        return Path(path)
    if not pack.manifest.calibration:
        raise CoachError(f"domain pack {pack.name!r} has no calibration cases "
                         f"(add 'calibration: FILE' to its pack.yaml, or pass --calibration FILE)")
    return pack.path(pack.manifest.calibration)


def check_calibration(pack: DomainPack, path: Path | str | None = None) -> list[Problem]:
    """Every problem in the calibration file; an empty list means it is clean."""
    return _parse(calibration_path(pack, path), pack)[1]


def load_calibration(pack: DomainPack, path: Path | str | None = None) -> CalibrationData:
    """The validated calibration data, or CalibrationError listing every problem with file and field."""
    resolved = calibration_path(pack, path)
    data, problems = _parse(resolved, pack)
    if data is None or problems:
        raise CalibrationError(_display(resolved), problems)
    return data


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
            for k, pos in enumerate(_transform_positions(t, data.exchanges)):
                reply = replies[pos - 1]
                if t.prepend:
                    reply = f"{t.prepend[k % len(t.prepend)].strip()}\n\n{reply}"
                if (appends or t.append_own_question) and not _ends_with_question(reply):
                    tail = appends[k % len(appends)] if appends else base[pos - 1].question
                    if tail:
                        reply = f"{reply} {tail.strip()}"
                if reply != replies[pos - 1]:
                    replies[pos - 1] = reply
                    edited.add(pos)
        must_fail = [c for c in order if c in spec.must_fail]
        if spec.must_pass == "all":  # every criterion judged at this length
            must_pass = [c.id for c in pack.rubric.criteria
                         if c.id not in spec.must_fail and c.min_turns <= data.exchanges]
        else:
            must_pass = [c for c in order if c in spec.must_pass]
        cases.append(CalibrationCase(
            name=spec.name,
            description=" ".join(spec.description.split()),
            turns=[Turn(u, a) for u, a in zip(users, replies, strict=True)],
            must_fail=must_fail,
            must_pass=must_pass,
            buried_at=min(edited) if edited else None,
            edited=sorted(edited),
        ))
    return cases


def select_cases(cases: Sequence[CalibrationCase], names: Collection[str] | None = None,
                 criteria: Collection[str] | None = None) -> list[CalibrationCase]:
    """The named cases (all when None), each narrowed to `criteria` (all when None); empty ones dropped.

    Raises CoachError naming any unknown case name.
    """
    if names:
        known = {c.name for c in cases}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CoachError(f"unknown calibration case(s) {', '.join(unknown)}; "
                             f"cases: {', '.join(c.name for c in cases)}")
        cases = [c for c in cases if c.name in names]
    if criteria is None:
        return list(cases)
    out = []
    for c in cases:
        narrowed = dataclasses.replace(c, must_fail=[x for x in c.must_fail if x in criteria],
                                       must_pass=[x for x in c.must_pass if x in criteria])
        if narrowed.criteria:
            out.append(narrowed)
    return out


def judged_pack(pack: DomainPack, criteria: Collection[str]) -> DomainPack:
    """The pack with its rubric narrowed to `criteria`, so `assess` asks only those."""
    rubric = pack.rubric.model_copy(update={"criteria": [c for c in pack.rubric.criteria if c.id in criteria]})
    return dataclasses.replace(pack, rubric=rubric)


# --- planning (an estimate of the judge's work) -----------------------------------------------


def planned_calls(router, pack: DomainPack, case: CalibrationCase) -> tuple[int, int]:
    """(windows, judge calls) that `assess` will make for `case`, summed over the configured judges.

    Mirrors the windowing in `actors.assessment.assess`: the same prompt
    frame, budget and `plan_windows`. May load a local model's tokenizer.
    """
    narrowed = judged_pack(pack, case.criteria)
    n = len(case.turns)
    criteria = due_criteria(narrowed.rubric, n)
    texts = [render_exchange(i + 1, t) for i, t in enumerate(case.turns)]
    windows = calls = 0
    for backend in router.backends_for("judge"):
        frame = max(backend.count_tokens([Message(role="user", content=judge_prompt(narrowed, c, "", n))])
                    for c in criteria)
        budget = backend.context_window - frame - JUDGE_MAX_TOKENS - 16
        sizes = [backend.count_tokens([Message(role="user", content=t)]) for t in texts]
        w = len(plan_windows(sizes, max(budget, 1)))
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
        result = CaseResult(case=case.name, must_fail=list(case.must_fail), must_pass=list(case.must_pass),
                            answers={}, exchanges=len(case.turns), buried_at=case.buried_at)
        try:
            outcome = await assess(router, judged_pack(pack, case.criteria), case.turns, seed=seed)
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
                    {"judge": ja.judge, "answer": ja.answer, "reasoning": ja.reasoning})
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


def score_calibration(results: Sequence[CaseResult], *, na_invalid: Collection[str] = (),
                      order: Sequence[str] = ()) -> CalibrationScore:
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

    def row(name: str, caught: int, must_fail: int, c_rate, spared: int, must_pass: int, s_rate,
            errors: int, notes: str = "") -> str:
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
        lines.append(row(s.criterion, s.caught, s.must_fail, s.caught_rate, s.spared, s.must_pass, s.spared_rate,
                         s.fail_errors + s.pass_errors, "; ".join(notes)))
    lines.append("-" * len(header))
    lines.append(row("overall", score._total("caught"), score._total("must_fail"), score.caught_rate,
                     score._total("spared"), score._total("must_pass"), score.spared_rate, score.errors))
    return "\n".join(lines)


def calibration_report(pack: DomainPack, cases: Sequence[CalibrationCase], results: Sequence[CaseResult],
                       score: CalibrationScore, *, judges: Sequence[str], source: str) -> dict:
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
