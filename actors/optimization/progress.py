"""An optimisation as the store holds it, read back for whoever follows it (the app's screen, a benchmark).

`coach optimize` runs in a process of its own and records everything as it
goes (`state.optimization_records`): each candidate once, each scored
(candidate, persona) conversation once, the end. This module turns those
records into what a person wants to see — the candidates with their scores per
persona and aggregated, which of them are on the Pareto front, which is best,
how much of the budget is spent — while the run is live as well as after.

While it runs, the front and the best are computed here the way GEPA keeps
them: a candidate is on the front when no other scored higher on some
validation persona (ties keep both), and the best has the highest mean over
the validation personas. Once finished, GEPA's own front and best (stored
with `OptimizeFinished`) are shown instead. `build_snapshot` is pure; only
`optimization_snapshot` reads the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean
from typing import Any

from state import optimization_records as records
from state.run_index import RunMarker, run_marker

from .scored import Scored


def persona_ids(count: int, validation: int) -> tuple[list[str], list[str]]:
    """(train, validation) persona ids of an optimisation of `count` people: the first `validation` validate."""
    ids = [f"p{i:02d}" for i in range(count)]
    return ids[validation:], ids[:validation]


@dataclass(frozen=True)
class OptimizeRunInfo:
    """One optimisation in the list: what it optimises and how far it got."""

    id: str
    status: str
    pack: str
    components: tuple[str, ...]
    budget: int
    """Conversations generated and judged that the run may spend (`--max-calls`)."""
    rollouts: int
    best_score: float | None
    created_at: datetime
    error: str = ""

    @property
    def live(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class CandidateRow:
    number: int
    """Order of first evaluation; 0 is the pack's own prompts."""
    key: str
    texts: dict[str, str]
    scores: dict[str, float]
    """Persona id → score, for every persona this candidate was scored on."""
    validation_mean: float | None
    mean: float | None
    """Over every persona scored (train and validation)."""
    failed: dict[str, int]
    """Criterion id → how many of its conversations failed it."""
    front: bool = False
    best: bool = False


@dataclass(frozen=True)
class OptimizationSnapshot:
    info: OptimizeRunInfo
    train: list[str]
    validation: list[str]
    candidates: list[CandidateRow]
    rollouts: list[Scored]
    finished: bool
    marker: RunMarker | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.info.live

    @property
    def personas(self) -> list[str]:
        """Validation personas first (they decide the front), then the training ones."""
        return [*self.validation, *self.train]

    @property
    def best(self) -> CandidateRow | None:
        return next((c for c in self.candidates if c.best), None)

    @property
    def judge_prompt_tokens(self) -> int:
        return sum(r.judge_prompt_tokens for r in self.rollouts)

    @property
    def judge_evaluated_tokens(self) -> int:
        return sum(r.judge_evaluated_tokens for r in self.rollouts)


def run_info(run: Any, rollouts: int | None = None) -> OptimizeRunInfo:
    """The list's row of one `Run` (kind "optimize"); `rollouts` when counted, else from the record."""
    config = run.config or {}
    settings = config.get("settings") or {}
    best = config.get("best_score")
    return OptimizeRunInfo(
        id=run.id,
        status=run.status,
        pack=str(config.get("pack", "")),
        components=tuple(settings.get("components") or ("assistant",)),
        budget=int(settings.get("max_calls") or 0),
        rollouts=int(config.get("rollouts", 0) if rollouts is None else rollouts),
        best_score=None if best is None else float(best),
        created_at=run.created_at,
        error=str(config.get("error", "")),
    )


def pareto_front(scores: dict[str, dict[str, float]], validation: list[str]) -> set[str]:
    """Candidates (by key) that score highest, ties included, on at least one validation persona."""
    front: set[str] = set()
    for persona in validation:
        scored = {key: s[persona] for key, s in scores.items() if persona in s}
        if scored:
            top = max(scored.values())
            front |= {key for key, value in scored.items() if value == top}
    return front


def build_snapshot(
    info: OptimizeRunInfo,
    settings: dict[str, Any],
    candidates: list[dict[str, Any]],
    rollouts: list[dict[str, Any]],
    finished: dict[str, Any] | None,
    marker: RunMarker | None = None,
) -> OptimizationSnapshot:
    """The snapshot from the run's records: candidate events, rollout events and the end (if any)."""
    train, validation = persona_ids(int(settings.get("personas", 0)), int(settings.get("validation", 0)))
    scored = [Scored.from_payload(p) for p in rollouts]
    texts = {c["key"]: dict(c.get("texts") or {}) for c in candidates}
    for r in scored:  # a rollout whose candidate event is missing still shows
        texts.setdefault(r.candidate, {})
    by_key: dict[str, dict[str, float]] = {key: {} for key in texts}
    failed: dict[str, Counter[str]] = {key: Counter() for key in texts}
    for r in scored:
        by_key[r.candidate][r.persona] = float(r.score)
        failed[r.candidate].update(r.failed)

    def val_mean(key: str) -> float | None:
        values = [by_key[key][p] for p in validation if p in by_key[key]]
        return fmean(values) if values else None

    if finished:
        keys = list(finished.get("candidates") or [])
        front = {keys[i] for i in finished.get("front") or [] if 0 <= i < len(keys)}
        best_index = finished.get("best")
        best = keys[best_index] if isinstance(best_index, int) and 0 <= best_index < len(keys) else None
    else:
        front = pareto_front(by_key, validation)
        means = [(m, -number, key) for number, key in enumerate(texts) if (m := val_mean(key)) is not None]
        best = max(means)[2] if means else None
    rows = [
        CandidateRow(
            number=number,
            key=key,
            texts=texts[key],
            scores=by_key[key],
            validation_mean=val_mean(key),
            mean=fmean(by_key[key].values()) if by_key[key] else None,
            failed=dict(failed[key].most_common()),
            front=key in front,
            best=key == best,
        )
        for number, key in enumerate(texts)
    ]
    return OptimizationSnapshot(
        info=info,
        train=train,
        validation=validation,
        candidates=rows,
        rollouts=scored,
        finished=finished is not None,
        marker=marker,
        settings=dict(settings),
    )


def optimization_runs(store) -> list[OptimizeRunInfo]:
    """Every optimisation in the workspace, newest first, each with its stored rollouts counted."""
    runs = records.optimization_runs(store)
    counts = records.event_counts(store, [r.id for r in runs], "OptimizeRollout")
    return [run_info(r, counts.get(r.id, 0)) for r in runs]


def optimization_snapshot(store, run_id: str) -> OptimizationSnapshot | None:
    """One optimisation read back whole; None when it is not in the store."""
    marker = run_marker(store, run_id)  # first: what is read below is at least this new
    run = records.find_run(store, run_id)
    if run is None:
        return None
    rollouts = records.events(store, run_id, "OptimizeRollout")
    finished = records.events(store, run_id, "OptimizeFinished")
    return build_snapshot(
        run_info(run, len(rollouts)),
        (run.config or {}).get("settings") or {},
        records.events(store, run_id, "OptimizeCandidate"),
        rollouts,
        finished[-1] if finished else None,
        marker,
    )
