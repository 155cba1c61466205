"""The latest assessment of a transcript: verdict, category scores, and every criterion's answer.

Each criterion shows the judge's answer, its reasoning and which judge gave
it, so a failing transcript explains itself without leaving the screen.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from actors.pack.models import Rubric
from state.models import Assessment, CriterionAnswer

ANSWER_STYLE = {"YES": "green", "NO": "red", "NA": "dim", "ERROR": "bold red"}


def _bar(value: float, width: int = 12) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "░" * (width - filled)


class RubricPane(VerticalScroll):
    DEFAULT_CSS = "RubricPane { height: 1fr; } RubricPane > Static { width: 100%; }"

    def compose(self):
        yield Static("No assessment yet for this transcript.", id="rubric")

    def show(self, rubric: Rubric, found: tuple[Assessment, list[CriterionAnswer]] | None) -> None:
        target = self.query_one("#rubric", Static)
        if found is None:
            target.update("No assessment yet for this transcript.")
            return
        assessment, answers = found
        verdict = Text()
        if assessment.passed:
            verdict.append(" PASS ", style="bold black on green")
        else:
            verdict.append(" FAIL ", style="bold white on red")
        verdict.append(f"  score {assessment.score:.3f} (threshold {rubric.pass_threshold:.2f})")
        verdict.append(f" · {assessment.stage}", style="dim")
        if assessment.safety_gate_failed:
            verdict.append("  safety gate failed", style="bold red")
        if assessment.failed_checks:
            verdict.append(f"\nfailed: {', '.join(assessment.failed_checks)}", style="red")

        categories = Table.grid(padding=(0, 1))
        for name, score in sorted(assessment.category_scores.items()):
            value = score if isinstance(score, (int, float)) else 0.0
            categories.add_row(
                name, Text(_bar(value), style="green" if value >= rubric.pass_threshold else "yellow"), f"{value:.2f}"
            )

        table = Table(expand=True, show_lines=False, box=None, padding=(0, 1), header_style="bold")
        table.add_column("id", no_wrap=True)
        table.add_column("ans", no_wrap=True)
        table.add_column("reasoning", ratio=1)
        table.add_column("judge", no_wrap=True, style="dim", max_width=18, overflow="ellipsis")
        order = {c.id: i for i, c in enumerate(rubric.criteria)}
        names = {c.id: c.name for c in rubric.criteria}
        for a in sorted(answers, key=lambda a: (order.get(a.criterion, 999), a.judge)):
            reasoning = Text(names.get(a.criterion, ""), style="bold")
            reasoning.append(f"\n{a.reasoning}" if a.reasoning else "", style="")
            table.add_row(a.criterion, Text(a.answer, style=ANSWER_STYLE.get(a.answer, "")), reasoning, a.judge)
        target.update(Group(verdict, Text(""), categories, Text(""), table))
