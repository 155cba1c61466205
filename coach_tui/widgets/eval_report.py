"""One evaluation run's report: the verdict first, then the numbers behind it.

Everything here is drawn from the dict `comparison_report` or `base_report`
returns, the one `coach eval` writes as JSON, so this pane and the written
report cannot disagree. A statistic the data leaves undefined (too few
pairs, every pair differing alike) shows as "—" beside the reason the
statistics module gave, and a run still in progress says that what is shown
covers only the conversations assessed so far. Under the verdict, judge
trust: the latest calibration of the judge that gave it, or "uncalibrated",
with a warning when that judge missed planted failures.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from actors.usecases.evaluations import EvalRunReport

EMPTY = Text.assemble(
    ("No evaluation runs in this workspace yet.\n\n", "bold"),
    "Should the base model be fine-tuned? Its pass rate on new personas, with the decision:\n",
    ("  coach eval base --model gemma3-270m\n\n", "bold cyan"),
    "Did the fine-tune help? Both models meet the same new personas; paired statistics and a safety gate (",
    ("c", "bold"),
    " starts one here, or):\n",
    ("  coach eval compare --base gemma3-270m --candidate PATH.gguf\n\n", "bold cyan"),
    (
        "A comparison started here runs in the background and keeps running if you quit (x stops it). Runs "
        "started from the command line are listed here too; a running one updates by itself, and p opens "
        "its conversations side by side.",
        "dim",
    ),
)
PASS_BADGE = ("  PASS  ", "bold black on green")
FAIL_BADGE = ("  FAIL  ", "bold white on red")
PENDING_BADGE = ("  NO VERDICT YET  ", "bold black on yellow")
INCONCLUSIVE_BADGE = ("  INCONCLUSIVE  ", "bold black on yellow")


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def crisis_cell(side: dict) -> Text:
    """Replies to crisis-flagged messages that passed the safety criteria, "k/n (share)"."""
    crisis = side.get("crisis_replies") or {}
    if not crisis.get("flagged"):
        return Text("none flagged", style="dim")
    share = crisis["share"]
    return Text(f"{crisis['passed_safety']}/{crisis['flagged']} ({share:.0%})", style="" if share == 1 else "red")


def judge_trust_text(trust: dict | None) -> Text | None:
    """The report's `judge_trust` entry as one line, and its warning in red on the next; None for a report without."""
    if not trust:
        return None
    text = Text.assemble(
        ("judge trust: ", "dim"),
        (str(trust.get("summary") or "uncalibrated"), "" if trust.get("status") == "calibrated" else "yellow"),
        (f" — judge {trust.get('judge') or 'not recorded'}", "dim"),
    )
    if trust.get("warning"):
        text.append(f"\n⚠ {trust['warning']}", style="bold red")
    return text


def _heading(text: str) -> Text:
    return Text(f"\n{text}", style="bold underline")


def _table(*columns: str, labels: int = 1) -> Table:
    """Label columns (the first ``labels``) on the left, numbers on the right."""
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold", show_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < labels else "right", no_wrap=i == 0)
    return table


def _difference(value: float, spec: str, *, lower_is_better: bool = False) -> Text:
    better = value < 0 if lower_is_better else value > 0
    style = "dim" if value == 0 else "green" if better else "red"
    return Text(format(value, spec), style=style)


class EvalReport(VerticalScroll):
    DEFAULT_CSS = "EvalReport { height: 1fr; padding: 0 1; } EvalReport > Static { width: 100%; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown: EvalRunReport | None = None
        """The report on screen (None for the hint or a problem), for the screen's copy action and tests."""

    def compose(self):
        yield Static(EMPTY, id="eval-report-body")

    def _draw(self, *parts: RenderableType) -> None:
        self.query_one("#eval-report-body", Static).update(Group(*parts))

    def show_hint(self) -> None:
        self.shown = None
        self._draw(EMPTY)

    def show_problem(self, run_id: str, message: str) -> None:
        self.shown = None
        self._draw(Text.assemble((f"{run_id}\n", "bold"), (message, "yellow")))

    def show(self, found: EvalRunReport, criterion_names: dict[str, str]) -> None:
        scroll = self.scroll_y if self.shown and self.shown.info.id == found.info.id else 0
        self.shown = found
        if found.info.kind == "compare":
            self._draw(*self._comparison(found, criterion_names))
        else:
            self._draw(*self._base(found, criterion_names))
        self.scroll_to(y=scroll, animate=False)

    # --- common ---------------------------------------------------------------------------

    def _progress(self, found: EvalRunReport) -> Text:
        info = found.info
        text = Text(
            f"{info.status} · {found.assessed} of {found.transcripts} conversations assessed",
            style="dim" if not found.unfinished else "yellow",
        )
        if found.unfinished:
            if found.live:
                text.append(" · still running: the numbers cover what is assessed so far, and update by themselves")
            else:
                text.append(" · unfinished")
            text.append("\nIf it was stopped or killed, continue it with: ", style="")
            text.append(info.resume_command, style="bold cyan")
            text.append("  (y copies it)", style="dim")
        return text

    def _written(self, found: EvalRunReport) -> Text:
        if found.written is not None:
            return Text.assemble(("Written report: ", "dim"), (str(found.written), "bold"))
        return Text(
            "No written report yet: coach eval writes it under WORKSPACE/reports/RUN when the run ends.", style="dim"
        )

    def _agreement(self, agreement: dict[str, dict], names: dict[str, str]) -> list[RenderableType]:
        if not agreement:
            return []
        table = _table("criterion", "Cohen's kappa", "raw agreement", "items")
        for cid, a in sorted(agreement.items()):
            kappa = a.get("kappa")
            style = "" if kappa is None else "green" if kappa >= 0.6 else "yellow" if kappa >= 0.4 else "red"
            table.add_row(
                _label(cid, names),
                Text(fmt(kappa, ".2f"), style=style),
                fmt(a.get("agreement"), ".0%"),
                str(a.get("items", "")),
            )
        return [_heading("Judge agreement"), table]

    # --- compare --------------------------------------------------------------------------

    def _comparison(self, found: EvalRunReport, names: dict[str, str]) -> list[RenderableType]:
        r = found.report
        b, c, p, verdict = r["base"], r["candidate"], r["paired"], r["verdict"]
        head = Text.assemble(
            (f"{found.info.id}", "bold"),
            "  base ",
            (str(b["model"]), "bold"),
            " vs candidate ",
            (str(c["model"]), "bold"),
        )
        gate_failed = verdict["safety_gate"] != "passed"
        if not p["n_pairs"]:
            line = Text.assemble(PENDING_BADGE, ("  no conversation is assessed for both models yet", "yellow"))
        else:
            outcome = verdict.get("outcome") or ("PASS" if verdict["passed"] else "FAIL")
            badge = {"PASS": PASS_BADGE, "INCONCLUSIVE": INCONCLUSIVE_BADGE}.get(outcome, FAIL_BADGE)
            line = Text.assemble(
                badge,
                ("  so far" if found.unfinished else "", "yellow"),
                "  safety gate: ",
                (verdict["safety_gate"], "bold red" if gate_failed else "green"),
            )
        if gate_failed:
            line.append(" — the candidate failed a safety gate where the base did not", style="red")
        rule = Text(f"Rule: {verdict['rule']}.", style="dim")

        models = _table("", "model", "n", "mean", "std", "pass rate", "safety-gate failures", labels=2)
        for role, side in (("base", b), ("candidate", c)):
            failures = side["safety_gate_failures"]
            models.add_row(
                role,
                str(side["model"]),
                str(side["n"]),
                fmt(side["mean"]),
                fmt(side["std"]),
                fmt(side["pass_rate"], ".0%"),
                Text(str(failures), style="red" if failures else ""),
            )

        crisis = Text.assemble(
            ("crisis replies passing safety: ", "dim"), "base ", crisis_cell(b), " · candidate ", crisis_cell(c)
        )

        stats = Table.grid(padding=(0, 2))
        stats.add_column(style="dim")
        stats.add_column()
        improvement = f" ({fmt(p['improvement_pct'], '+.1f')} %)" if p["improvement_pct"] is not None else ""
        stats.add_row("unit of analysis", str(r.get("unit_of_analysis", "persona")))
        stats.add_row("persona pairs", f"{p['n_pairs']} ({p.get('n_run_pairs', p['n_pairs'])} run pairs)")
        stats.add_row("mean difference", f"{fmt(p['mean_difference'], '+.3f')}{improvement}")
        stats.add_row("cluster bootstrap 95 % CI", f"[{fmt(p['ci_low'])}, {fmt(p['ci_high'])}]")
        stats.add_row("paired t-test", f"t = {fmt(p['t_statistic'])}, p = {fmt(p['t_pvalue'], '.4f')}")
        stats.add_row(
            "Wilcoxon signed-rank", f"W = {fmt(p['wilcoxon_statistic'])}, p = {fmt(p['wilcoxon_pvalue'], '.4f')}"
        )
        stats.add_row("effect size (Cohen's d_z)", fmt(p["effect_size_dz"], ".2f"))
        for note in p["notes"]:
            stats.add_row("note", Text(note, style="yellow"))
        run = r.get("run_level")
        if run:
            stats.add_row(
                "run level (secondary)",
                Text(
                    f"{run['n_pairs']} run pairs, t-test p = {fmt(run['t_pvalue'], '.4f')} — {run['warning']}",
                    style="yellow",
                ),
            )

        parts: list[RenderableType] = [
            head,
            line,
            *filter(None, [judge_trust_text(r.get("judge_trust"))]),
            rule,
            self._progress(found),
            self._written(found),
            _heading("Models (paired conversations)"),
            models,
            crisis,
            _heading("Paired statistics (candidate − base)"),
            stats,
        ]
        if r["safety_regressions"]:
            parts.append(_heading("Safety regressions"))
            parts += [
                Text.assemble(
                    (f"persona p{reg['persona']} run {reg['run']}: ", "bold red"),
                    f"candidate {reg['candidate']} failed a safety gate; base {reg['base']} did not",
                )
                for reg in r["safety_regressions"]
            ]
        if r["category_differences"]:
            categories = _table("category", "base", "candidate", "difference")
            for k, d in r["category_differences"].items():
                categories.add_row(k, fmt(b["categories"].get(k)), fmt(c["categories"].get(k)), _difference(d, "+.3f"))
            parts += [_heading("Categories (mean score)"), categories]
        if r["criterion_failure_rate_differences"]:
            criteria = _table("criterion", "base", "candidate", "difference")
            for cid, d in r["criterion_failure_rate_differences"].items():
                criteria.add_row(
                    _label(cid, names),
                    fmt(b["criterion_failure_rates"].get(cid), ".0%"),
                    fmt(c["criterion_failure_rates"].get(cid), ".0%"),
                    _difference(d, "+.0%", lower_is_better=True),
                )
            parts += [_heading("Criteria (failure rate)"), criteria]
        if r["per_persona"]:
            personas = _table("persona", "runs", "base", "candidate", "difference")
            for pid, row in r["per_persona"].items():
                personas.add_row(
                    pid,
                    str(row["runs"]),
                    fmt(row["base_mean"]),
                    fmt(row["candidate_mean"]),
                    _difference(row["candidate_mean"] - row["base_mean"], "+.3f"),
                )
            parts += [_heading("Per persona (mean score)"), personas]
        parts += self._agreement(r["judge_agreement"], names)
        if r["unpaired"]:
            parts.append(Text(f"\nUnpaired (failed, or not assessed yet): {', '.join(r['unpaired'])}", style="dim"))
        return parts

    # --- base -----------------------------------------------------------------------------

    def _base(self, found: EvalRunReport, names: dict[str, str]) -> list[RenderableType]:
        r = found.report
        s = r["summary"]
        head = Text.assemble(
            (f"{found.info.id}", "bold"), "  base model evaluation of ", (str(r["model"] or "?"), "bold")
        )
        rate = s["pass_rate"]
        if r["decision"] is None:
            decision = Text("No decision yet: no conversation has been assessed.", style="yellow")
        else:
            style = "bold green" if rate >= 0.70 else "bold yellow" if rate >= 0.50 else "bold red"
            decision = Text.assemble(
                ("pass rate ", "bold"),
                (fmt(rate, ".0%"), style),
                ("  so far" if found.unfinished else "", "yellow"),
                "  → ",
                (r["decision"], style),
            )
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="dim")
        summary.add_column()
        summary.add_row("conversations assessed", f"{r['assessed']} of {r['transcripts']}")
        summary.add_row("mean score", fmt(s["mean"]))
        summary.add_row("std", fmt(s["std"]))
        summary.add_row("pass rate", fmt(rate, ".0%"))
        failures = r["safety_gate_failures"]
        summary.add_row("safety-gate failures", Text(str(failures), style="bold red" if failures else ""))
        summary.add_row("crisis replies passing safety", crisis_cell(r))
        parts: list[RenderableType] = [
            head,
            decision,
            *filter(None, [judge_trust_text(r.get("judge_trust"))]),
            self._progress(found),
            self._written(found),
            _heading("Summary"),
            summary,
        ]
        rates = sorted(r["criterion_failure_rates"].items(), key=lambda kv: (-kv[1], kv[0]))
        if rates:
            criteria = _table("criterion", "failure rate", "")
            for cid, value in rates:
                bar = Text("█" * round(value * 20), style="red" if value >= 0.5 else "yellow" if value else "dim")
                criteria.add_row(_label(cid, names), f"{value:.0%}", bar)
            parts += [_heading("Criteria (failure rate, most failed first)"), criteria]
        parts += self._agreement(r["judge_agreement"], names)
        if r["failed_transcripts"]:
            parts.append(Text(f"\nFailed conversations: {', '.join(r['failed_transcripts'])}", style="red"))
        return parts


def _label(cid: str, names: dict[str, str]) -> str:
    return f"{cid} {names[cid]}" if cid in names else cid
