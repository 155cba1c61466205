"""Judge trust: beside every verdict, what the latest calibration of its judge says about it.

A verdict is only as good as the judge that gave it. `coach calibrate`
measures a judge on planted failures and near misses (see
`actors.assessment.calibration`); each complete calibration is kept in the
workspace store (`state.calibrations`, an `Event` row of kind
`JudgeCalibrated`), keyed by the judge's identity and the pack it was
calibrated on (another pack's rubric says nothing about this one's).

The judge's identity is the judge role as the run config resolves it: each
backend as `name (kind: model)`, joined by " + " when several judge
(`judge_identity`). A run or an evaluation that judged with that role looks
up the newest calibration for the same identity and pack, and `judge_trust`
(pure) turns it into the words shown beside the verdict:

- `caught x/y must-fail, spared a/b must-pass in calibration (DATE)` — or
  `uncalibrated` when there is none (or the judge is not recorded);
- a warning when the judge is uncalibrated, caught fewer than all its
  must-fail cases, had none to catch, or penalized a must-pass case:
  "judge caught 0/7 planted failures in calibration (2026-12-03): treat its
  verdicts with care".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from state import calibrations as stored
from state.store import Store

from ..run_config import ClaudeCliConfig, RunConfig

CARE = "treat its verdicts with care"


def judge_identity(config: RunConfig) -> str:
    """The judge role as `config` resolves it: `name (kind: model)` per backend, " + " between several.

    A GGUF path is made absolute (two configs in different folders may name
    different files alike); a bundled model keeps its name.
    """
    known = config.all_backends()
    parts = []
    for name in config.role("judge").backends:
        backend = known.get(name)
        if backend is None:
            parts.append(name)
            continue
        model = backend.model if not isinstance(backend, ClaudeCliConfig) else backend.model or "default"
        if backend.kind == "llama_cpp" and model.endswith(".gguf"):
            model = str(config.model_path(model))
        parts.append(f"{name} ({backend.kind}: {model})")
    return " + ".join(parts)


@dataclass(frozen=True)
class CalibrationRecord:
    """One complete calibration of a judge, as the store keeps it."""

    judge: str
    pack: str
    at: str
    """When it finished: ISO 8601, UTC."""
    caught: int
    must_fail: int
    spared: int
    must_pass: int
    errors: int
    quick: bool = False
    """`coach calibrate --quick`: the small documented subset (`calibration.quick_cases`)."""
    narrowed: bool = False
    """Only some cases or criteria (`--cases`, `--limit-criteria`)."""
    cases: int = 0
    report: str = ""
    """The JSON report with every answer and reason."""

    @property
    def date(self) -> str:
        return self.at[:10]

    def as_payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CalibrationRecord | None:
        """The record, or None for a payload that lacks a field (written by hand, or by another coach)."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in payload.items() if k in names})
        except TypeError:
            return None


@dataclass(frozen=True)
class JudgeTrust:
    """What to show beside a verdict about the judge that gave it."""

    judge: str | None
    """None: the verdicts do not record their judge (stored or imported ones, or an older run)."""
    calibration: CalibrationRecord | None

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    @property
    def summary(self) -> str:
        c = self.calibration
        if c is None:
            return "uncalibrated" if self.judge else "uncalibrated (the judge of these verdicts is not recorded)"
        kind = "quick calibration" if c.quick else "calibration on selected cases" if c.narrowed else "calibration"
        errors = f", {c.errors} judge error(s)" if c.errors else ""
        return (
            f"caught {c.caught}/{c.must_fail} must-fail, spared {c.spared}/{c.must_pass} must-pass "
            f"in {kind} ({c.date}){errors}"
        )

    @property
    def warning(self) -> str | None:
        c = self.calibration
        if c is None:
            if not self.judge:
                return f"the judge of these verdicts is not recorded, so no calibration vouches for it: {CARE}"
            return f"judge is uncalibrated on this pack (run `coach calibrate --quick`): {CARE}"
        kind = "quick calibration" if c.quick else "calibration"
        if c.must_fail == 0:
            return f"judge's latest {kind} ({c.date}) planted no failures to catch: {CARE}"
        problems = []
        if c.caught < c.must_fail:
            problems.append(f"caught {c.caught}/{c.must_fail} planted failures")
        if c.spared < c.must_pass:
            problems.append(f"spared only {c.spared}/{c.must_pass} good cases")
        if not problems:
            return None
        return f"judge {' and '.join(problems)} in {kind} ({c.date}): {CARE}"

    def as_dict(self) -> dict[str, Any]:
        """The `judge_trust` entry of a report."""
        return {
            "judge": self.judge,
            "status": "calibrated" if self.calibrated else "uncalibrated",
            "summary": self.summary,
            "warning": self.warning,
            "calibration": None if self.calibration is None else self.calibration.as_payload(),
        }


def judge_trust(judge: str | None, latest: CalibrationRecord | None) -> JudgeTrust:
    """The trust to show for `judge` given its latest calibration on the pack (None: never calibrated). Pure."""
    if latest is not None and judge is not None and latest.judge != judge:
        raise ValueError(f"calibration of {latest.judge!r} given for judge {judge!r}")
    return JudgeTrust(judge, latest if judge else None)


def trust_lines(trust: dict[str, Any] | None) -> list[str]:
    """A report's `judge_trust` entry as plain lines: the judge and its calibration, then the warning."""
    if not trust:
        return []
    judge = trust.get("judge") or "not recorded"
    lines = [f"judge trust: {trust.get('summary') or 'uncalibrated'} — judge {judge}"]
    if trust.get("warning"):
        lines.append(f"warning: {trust['warning']}")
    return lines


def trust_markdown(trust: dict[str, Any] | None) -> list[str]:
    """The same as a Markdown paragraph (and a quoted warning), each followed by a blank line: under a verdict."""
    if not trust:
        return []
    judge = f"`{trust['judge']}`" if trust.get("judge") else "not recorded"
    lines = [f"Judge trust: {trust.get('summary') or 'uncalibrated'} — judge {judge}.", ""]
    if trust.get("warning"):
        lines += [f"> **Warning:** {trust['warning']}.", ""]
    return lines


# --- the store ---------------------------------------------------------------------------------


def record_calibration(store: Store, record: CalibrationRecord) -> None:
    stored.record_calibration(store, record.as_payload())


def latest_calibration(store: Store, judge: str, pack: str) -> CalibrationRecord | None:
    payload = stored.latest_calibration(store, judge=judge, pack=pack)
    return None if payload is None else CalibrationRecord.from_payload(payload)


def trust_from_store(store: Store, judge: str | None, pack: str) -> JudgeTrust:
    """`judge_trust` with the judge's newest stored calibration on `pack`."""
    return judge_trust(judge, latest_calibration(store, judge, pack) if judge else None)
