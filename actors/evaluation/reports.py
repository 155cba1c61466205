"""An evaluation run as the app shows it: the CLI's own report, computed from whatever the store holds now.

The eval screen must show the numbers `coach eval` writes, so this module
only reads the run's labels out of its config and calls the same functions
(`collect_results`, `compare`, `comparison_report`, `base_report`). It must
also show a run that is half done, was started with an older config, or has
no assessment yet, so every config lookup has a fallback and an unfinished
run says how far it got and how to resume it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from state import pipeline as db
from state import run_index
from state.models import Run
from state.run_index import RunMarker, run_marker
from state.store import Store

from ..assessment.judge_trust import trust_from_store
from ..pack.domain_pack import DomainPack

KIND = "eval"
REPORT_FILES = {"compare": "comparison_report.md", "base": "base_report.md"}


@dataclass(frozen=True)
class EvalRunInfo:
    """What the run's config says about it, with fallbacks for keys an older or hand-made run lacks."""

    id: str
    kind: str  # base | compare | ? (neither the config nor the transcripts say)
    status: str
    seed: int | None
    created_at: datetime
    models: tuple[str, ...]
    personas: int | None
    runs: int | None
    exchanges: int | None
    base: str | None
    candidate: str | None

    @classmethod
    def from_run(cls, run: Run, seen_models: list[str] | None = None) -> EvalRunInfo:
        """`seen_models`: the model labels its transcripts carry, for a config that names none."""
        cfg = run.config if isinstance(run.config, dict) else {}
        named = cfg.get("models") if isinstance(cfg.get("models"), list) else None
        models = [str(m) for m in named or seen_models or []]
        kind = cfg.get("kind")
        if kind not in REPORT_FILES:
            kind = "compare" if len(models) > 1 else "base" if models else "?"
        base, candidate = (models[0] if models else None), None
        if kind == "compare":
            base = cfg.get("base") or base
            candidate = cfg.get("candidate") or (models[1] if len(models) > 1 else None)
        return cls(
            id=run.id,
            kind=kind,
            status=run.status,
            seed=run.seed,
            created_at=run.created_at,
            models=tuple(models),
            personas=_int(cfg.get("personas")),
            runs=_int(cfg.get("runs")),
            exchanges=_int(cfg.get("exchanges")),
            base=base,
            candidate=candidate,
        )

    @property
    def size(self) -> str:
        """personas × runs × exchanges, `?` for what the config does not say."""
        return "×".join("?" if n is None else str(n) for n in (self.personas, self.runs, self.exchanges))

    @property
    def resume_command(self) -> str:
        seed = f" --seed {self.seed}" if self.seed is not None else ""
        if self.kind == "compare":
            return (
                f"coach eval compare --resume {self.id} --base {self.base or 'BASE'} "
                f"--candidate {self.candidate or 'CANDIDATE'}{seed}"
            )
        model = f" --model {self.base}" if self.base else ""
        return f"coach eval base --resume {self.id}{model}{seed}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class EvalRunReport:
    info: EvalRunInfo
    marker: RunMarker
    transcripts: int
    done: int  # passed or rejected: nothing left to do
    assessed: int
    report: dict  # comparison_report(...) or base_report(...)
    written: Path | None  # the report `coach eval` wrote, when it is where the CLI puts it

    @property
    def unfinished(self) -> bool:
        return self.info.status != "finished" or self.done < self.transcripts

    @property
    def live(self) -> bool:
        """Worth watching: running, or between the models of a comparison (finished for one, planned for the next)."""
        return self.info.status == "running" or (self.info.status == "finished" and self.done < self.transcripts)


def run_judge_trust(store: Store, run: Run) -> dict:
    """The report's `judge_trust`: the latest calibration of the judge the run recorded (`config.judge`) on its pack.

    A run from before judges were recorded says so (uncalibrated, judge not recorded).
    """
    cfg = run.config if isinstance(run.config, dict) else {}
    judge = cfg.get("judge") if isinstance(cfg.get("judge"), str) and cfg.get("judge") else None
    return trust_from_store(store, judge, run.domain).as_dict()


def eval_runs(store: Store, limit: int = 200) -> list[EvalRunInfo]:
    """Every evaluation run, newest first."""
    return [EvalRunInfo.from_run(r) for r in run_index.recent_runs(store, KIND, limit)]


def eval_run_report(
    store: Store, run_id: str, workspace: Path | None = None, pack: DomainPack | None = None
) -> EvalRunReport | None:
    """The run's report from its assessments so far (None when there is no such evaluation run)."""
    # Here, not at the top: the statistics bring scipy, which would add most of a second to the app's start.
    from .protocol import base_report, collect_results, compare, comparison_report, crisis_inputs

    marker = run_marker(store, run_id)  # before reading: a change while we read shows at the next look
    run = db.get_run(store, run_id)
    if run is None or run.kind != KIND:
        return None
    results = collect_results(store, run_id, **crisis_inputs(pack))
    info = EvalRunInfo.from_run(run, list(dict.fromkeys(r.model for r in results)))
    if info.kind == "compare":
        comparison = compare(results, info.base or "", info.candidate or "", seed=run.seed or 0)
        report = comparison_report(comparison, results)
    else:
        report = base_report(results, info.base or "")
    report["judge_trust"] = run_judge_trust(store, run)
    written = None
    if workspace is not None and info.kind in REPORT_FILES:
        path = Path(workspace) / "reports" / run_id / REPORT_FILES[info.kind]
        written = path if path.is_file() else None
    return EvalRunReport(
        info=info,
        marker=marker,
        transcripts=len(results),
        done=sum(r.status in db.TERMINAL for r in results),
        assessed=sum(r.score is not None for r in results),
        report=report,
        written=written,
    )
