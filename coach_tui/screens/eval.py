"""Eval: a placeholder until the evaluation screen lands; says how to compare models meanwhile."""

from __future__ import annotations

from sqlmodel import select

from state.models import Run

from .placeholder import PlaceholderScreen


class EvalScreen(PlaceholderScreen):
    SECTION = "eval"

    def text(self) -> str:
        with self.app.store.session() as s:
            runs = s.exec(select(Run).where(Run.kind == "eval").order_by(Run.created_at.desc()).limit(10)).all()
        lines = [
            "# Eval",
            "",
            "Base-vs-fine-tuned comparison with statistics gets its screen with the evaluation issue.",
            "Meanwhile: `coach eval base` (should this model be fine-tuned?) and `coach eval compare` "
            "(base vs candidate, paired statistics).",
            "",
        ]
        if runs:
            lines.append("Evaluation runs in this workspace:")
            lines += [f"- `{r.id}` · {r.status} · {r.created_at:%Y-%m-%d %H:%M}" for r in runs]
        else:
            lines.append("No evaluation runs in this workspace yet.")
        return "\n".join(lines)
