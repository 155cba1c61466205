"""Judge calibrations in the store: one `Event` row (kind `JudgeCalibrated`, no run) per complete calibration.

A calibration is a logged fact about a judge, not a run with transcripts,
so it needs no table of its own: the payload holds the judge's identity,
the pack, when, and the counts (see `actors.assessment.judge_trust`). The
rows are few (one per `coach calibrate`), so the newest one for a judge and
pack is found by reading them newest first.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from .models import Event
from .store import Store

KIND = "JudgeCalibrated"


def record_calibration(store: Store, payload: dict[str, Any]) -> None:
    with store.session() as s:
        s.add(Event(run_id=None, kind=KIND, payload=dict(payload)))


def latest_calibration(store: Store, *, judge: str, pack: str) -> dict[str, Any] | None:
    """The payload of the newest calibration of `judge` on `pack`, or None when it was never calibrated there."""
    with store.session() as s:
        rows = s.exec(select(Event.payload).where(Event.kind == KIND, Event.run_id.is_(None)).order_by(Event.id.desc()))
        for payload in rows:
            if isinstance(payload, dict) and payload.get("judge") == judge and payload.get("pack") == pack:
                return dict(payload)
    return None
