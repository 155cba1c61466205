"""Evaluation runs in the workspace, newest first; the highlighted one is the report shown below."""

from __future__ import annotations

from actors.usecases.evaluations import EvalRunInfo

from .run_list import RunList, run_status_text


class EvalRunsTable(RunList):
    COLUMNS = ("run", "status", "kind", "models", "p×r×ex", "created")

    def cells(self, run: EvalRunInfo) -> tuple:
        models = " vs ".join(m.rsplit("/", 1)[-1] for m in run.models) or "?"  # a GGUF by its file name
        return (
            run.id,
            run_status_text(run.status),
            run.kind,
            models,
            run.size,
            run.created_at.strftime("%Y-%m-%d %H:%M"),
        )
