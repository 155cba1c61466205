"""Training runs in the workspace, newest first: how far each got and its last loss."""

from __future__ import annotations

from actors.usecases.training import TrainRunInfo

from .run_list import RunList, run_status_text


def steps_text(step: int | None, max_steps: int | None) -> str:
    return f"{'–' if step is None else step}/{'?' if max_steps is None else max_steps}"


class TrainRunsTable(RunList):
    COLUMNS = ("run", "status", "preset", "steps", "last loss", "created")

    def cells(self, run: TrainRunInfo) -> tuple:
        loss = "–" if run.last_loss is None else f"{run.last_loss:.4f}"
        return (
            run.id,
            run_status_text(run.status),
            run.preset,
            steps_text(run.step, run.max_steps),
            loss,
            run.created_at.strftime("%Y-%m-%d %H:%M"),
        )
