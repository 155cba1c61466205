"""Calibrating the judge: does it catch known failures and spare good conversations?

`coach calibrate` is the face. The cases come from the domain pack's
calibration file (`actors.assessment.calibration`); each is judged only on the criteria
it is about. The plan (windows and judge calls) is told before anything is
asked, each case as it starts and ends, and the report is written at the end
— or, after an interruption, from the cases judged so far (`finish`).

A complete calibration is also kept in the workspace store, keyed by the
judge's identity and the pack, so every later verdict of that judge can say
how far to trust it (`actors.assessment.judge_trust`); a partial one is
not, since it would stand for cases it never judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from actors.assessment.calibration import (
    CalibrationCase,
    CalibrationScore,
    CaseResult,
    build_cases,
    calibration_report,
    format_table,
    planned_calls,
    quick_cases,
    run_calibration,
    score_calibration,
    select_cases,
)
from actors.assessment.judge_trust import (
    CalibrationRecord,
    JudgeTrust,
    judge_identity,
    record_calibration,
    trust_from_store,
    trust_lines,
)
from actors.atomic_files import write_json_atomic
from actors.pack.calibration_cases import CalibrationData, calibration_path, load_calibration
from actors.pack.loader import DomainPack
from actors.run_config import load_run_config
from state.errors import CoachError
from state.store import Store

from .relay import OnEvent

__all__ = [
    "Calibration",
    "CalibrationCase",
    "CalibrationOutcome",
    "CalibrationPlanned",
    "CalibrationRequest",
    "CaseJudged",
    "CaseResult",
    "CaseSelection",
    "CaseStarted",
    "JudgeTrust",
    "format_table",
    "judge_trust_for",
    "select_calibration_cases",
    "trust_lines",
]


class CalibrationRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    config_path: Path | None = None
    """Run config naming the judge (default: the embedded model)."""
    cases: tuple[str, ...] | None = None
    """Only these cases."""
    criteria: tuple[str, ...] | None = None
    """Only these criteria; cases about none of them are skipped."""
    calibration_file: Path | None = None
    """Default: the one the domain pack names."""
    seed: int = 0
    out: Path | None = None
    """JSON report (default: WORKSPACE/reports/calibration-TIMESTAMP.json)."""
    quick: bool = False
    """Only the small documented subset (`actors.assessment.calibration.quick_cases`)."""

    @property
    def narrowed(self) -> bool:
        return bool(self.cases or self.criteria)


@dataclass(frozen=True)
class CaseSelection:
    source: Path
    data: CalibrationData
    cases: list[CalibrationCase]


@dataclass(frozen=True)
class CalibrationPlanned:
    """Told before the first judge call: who judges, and how much work each case is."""

    judges: tuple[str, ...]
    plans: dict[str, tuple[int, int]]
    """case name -> (windows, judge calls)."""
    verdicts: int
    local: bool
    """A local model judges: its cost is mostly reading each window, not the number of calls."""

    @property
    def windows(self) -> int:
        return sum(w for w, _ in self.plans.values())

    @property
    def calls(self) -> int:
        return sum(c for _, c in self.plans.values())


@dataclass(frozen=True)
class CaseStarted:
    index: int
    case: CalibrationCase
    windows: int
    calls: int


@dataclass(frozen=True)
class CaseJudged:
    index: int
    case: CalibrationCase
    result: CaseResult


@dataclass(frozen=True)
class CalibrationOutcome:
    score: CalibrationScore
    report: dict
    out: Path
    partial: bool


def select_calibration_cases(pack: DomainPack, request: CalibrationRequest) -> CaseSelection:
    """The calibration file's cases narrowed by the request; a clear error for unknown criteria or none left."""
    source = calibration_path(pack, request.calibration_file)
    data = load_calibration(pack, source)
    all_cases = build_cases(pack, data)
    if request.quick:
        if request.narrowed:
            raise CoachError("--quick picks its own cases and criteria: drop --cases and --limit-criteria")
        return CaseSelection(source, data, quick_cases(all_cases, safety_gates=pack.rubric.safety_gates))
    wanted = list(request.criteria) if request.criteria else None
    if wanted:
        unknown = [c for c in wanted if c not in pack.rubric.ids]
        if unknown:
            raise CoachError(
                f"--limit-criteria: unknown criterion {', '.join(unknown)}; the rubric has {', '.join(pack.rubric.ids)}"
            )
    cases = select_cases(all_cases, list(request.cases) if request.cases else None, wanted)
    if not cases:
        raise CoachError(
            f"no calibration case is about the chosen criteria ({', '.join(wanted or [])}); see coach calibrate --list"
        )
    return CaseSelection(source, data, cases)


@dataclass
class Calibration:
    """One calibration of the configured judge on a selection of cases."""

    pack: DomainPack
    selection: CaseSelection
    request: CalibrationRequest
    workspace: Path
    on_event: OnEvent | None = None
    store: Store | None = None
    """Where a complete calibration is recorded for judge trust (None: the report only)."""
    done: list[tuple[CalibrationCase, CaseResult]] = field(default_factory=list)
    """The cases judged so far, for a partial report after an interruption."""
    judges: list[str] = field(default_factory=list)
    judge: str = ""
    """The judge role's identity, as the run config resolves it (`judge_identity`)."""
    out: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.request.out or Path(self.workspace) / "reports" / (
            "calibration-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + ".json"
        )

    def _tell(self, event: object) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def run(self) -> CalibrationOutcome:
        """Judge every selected case, then score them and write the report."""
        from actors.backends.router import ModelRouter

        cases = self.selection.cases
        config = load_run_config(self.request.config_path)
        self.judge = judge_identity(config)
        router = ModelRouter.from_config(config)
        try:
            judges = router.backends_for("judge")
            self.judges.extend(f"{b.name} ({b.kind}: {b.model})" for b in judges)
            plans = {c.name: planned_calls(router, self.pack, c) for c in cases}
            self._tell(
                CalibrationPlanned(
                    tuple(self.judges),
                    plans,
                    sum(len(c.criteria) for c in cases),
                    local=any(b.kind == "llama_cpp" for b in judges),
                )
            )

            def on_start(i: int, case: CalibrationCase) -> None:
                self._tell(CaseStarted(i, case, *plans[case.name]))

            def on_done(i: int, case: CalibrationCase, result: CaseResult) -> None:
                self.done.append((case, result))
                self._tell(CaseJudged(i, case, result))

            results = await run_calibration(
                router, self.pack, cases, seed=self.request.seed, on_start=on_start, on_done=on_done
            )
        finally:
            await router.aclose()
        return self._write(cases, results, partial=False)

    def finish(self) -> CalibrationOutcome | None:
        """After an interruption: the report of the cases judged so far (None when there are none)."""
        if not self.done:
            return None
        return self._write([c for c, _ in self.done], [r for _, r in self.done], partial=True)

    def _write(self, cases: list[CalibrationCase], results: list[CaseResult], *, partial: bool) -> CalibrationOutcome:
        rubric = self.pack.rubric
        score = score_calibration(results, na_invalid=rubric.na_invalid, order=rubric.ids)
        report = calibration_report(
            self.pack, cases, results, score, judges=self.judges, source=str(self.selection.source)
        )
        report["partial"] = partial
        report["quick"] = self.request.quick
        write_json_atomic(self.out, report)
        if not partial and self.store is not None and self.judge:
            summary = score.as_dict()
            record_calibration(
                self.store,
                CalibrationRecord(
                    judge=self.judge,
                    pack=self.pack.name,
                    at=datetime.now(UTC).isoformat(timespec="seconds"),
                    caught=summary["caught"],
                    must_fail=summary["must_fail"],
                    spared=summary["spared"],
                    must_pass=summary["must_pass"],
                    errors=summary["errors"],
                    quick=self.request.quick,
                    narrowed=self.request.narrowed,
                    cases=len(cases),
                    report=str(self.out),
                ),
            )
        return CalibrationOutcome(score, report, self.out, partial)


def judge_trust_for(store: Store, pack: DomainPack, config_path: Path | str | None) -> JudgeTrust:
    """How far to trust the judge the run config at `config_path` resolves, on `pack`: its latest calibration.

    A config that no longer loads leaves the judge unrecorded (and so uncalibrated).
    """
    try:
        judge: str | None = judge_identity(load_run_config(Path(config_path) if config_path else None))
    except CoachError:
        judge = None
    return trust_from_store(store, judge, pack.name)
