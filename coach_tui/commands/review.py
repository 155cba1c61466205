"""`coach review` and `coach report curation`: the human side of curation, headless."""

from __future__ import annotations

import click

from actors.usecases.curation import curation_report, decide, fixup_detail, list_fixups
from state.errors import CoachError

from ..context import AppContext, pass_app
from ..json_output import echo_json

_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout, and nothing else."
)


def _short(text: str | None, width: int = 70) -> str:
    if text is None:
        return "(none)"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@click.command("review")
@click.option("--list", "list_", is_flag=True, help="List fixups waiting for a decision.")
@click.option("--show", "show_id", type=int, metavar="ID", help="Show one fixup with its context.")
@click.option("--accept", "accept_id", type=int, metavar="ID", help="Accept a fixup: its rewrite replaces the reply.")
@click.option(
    "--reject",
    "reject_id",
    type=int,
    metavar="ID",
    help="Reject a fixup: the transcript is cut before that exchange (or rejected if too short).",
)
@click.option("--criterion", help="With --list: only fixups for this criterion or artifact kind.")
@_json_option
@pass_app
def review_cmd(
    app: AppContext,
    list_: bool,
    show_id: int | None,
    accept_id: int | None,
    reject_id: int | None,
    criterion: str | None,
    as_json: bool,
) -> None:
    """Decide fixups proposed in review mode (`coach run --review`).

    Decisions are stored at once. A transcript with no undecided fixups left
    goes back to assessment on the next `coach run --resume RUN`.
    """
    chosen = [x for x in (list_, show_id is not None, accept_id is not None, reject_id is not None) if x]
    if len(chosen) != 1:
        raise CoachError("choose one of --list, --show ID, --accept ID, --reject ID")
    if as_json and not (list_ or show_id is not None):
        raise click.UsageError("--json goes with --list or --show")
    store = app.store
    if list_:
        waiting = list_fixups(store, criterion=criterion)
        if as_json:
            echo_json({"fixups": [_fixup_json(f) for f in waiting]})
            return
        if not waiting:
            click.echo("no fixups waiting for a decision")
            return
        click.echo(f"{'id':>5}  {'transcript':<28} {'exch':>4}  {'reason':<22} {'continuity':<10} rewrite")
        for f in waiting:
            entail = {True: "follows", False: "BREAKS", None: "-"}[f.entailment_ok]
            click.echo(
                f"{f.id:>5}  {f.transcript_id:<28} {f.exchange_number:>4}  {_short(f.reason, 22):<22} "
                f"{entail:<10} {_short(f.proposed, 50)}"
            )
        click.echo(f"{len(waiting)} waiting — decide with: coach review --accept ID / --reject ID")
        return
    if show_id is not None:
        ctx = fixup_detail(store, show_id)
        f = ctx.fixup
        if as_json:
            echo_json(
                {
                    "fixup": _fixup_json(f),
                    "transcript_status": ctx.transcript_status,
                    "user_message": ctx.user_message,
                    "next_user_message": ctx.next_user_message,
                }
            )
            return
        click.echo(
            f"fixup {f.id} — transcript {f.transcript_id} ({ctx.transcript_status}), exchange {f.exchange_number}"
        )
        click.echo(f"reason: {f.reason_kind} {f.reason}\n  {f.reasoning}\n")
        click.echo(f"user:\n  {ctx.user_message}\n\noriginal reply:\n  {f.original}\n\nrewrite:\n  {f.proposed}\n")
        click.echo(f"user's next message:\n  {ctx.next_user_message or '(none)'}")
        click.echo(f"continuity check: {'follows' if f.entailment_ok else 'BREAKS'} — {f.entailment_reasoning}")
        click.echo(f"decision: {f.decision}")
        return
    fixup_id = accept_id if accept_id is not None else reject_id
    decision = decide(store, fixup_id, accept=accept_id is not None)
    verb = "accepted" if decision.accepted else "rejected"
    click.echo(f"fixup {fixup_id} {verb}; transcript is now {decision.status}")
    if decision.judge_again:
        click.echo("it will be assessed again on the next `coach run --resume RUN`")


def _fixup_json(f) -> dict:
    """A fixup as `--json` shows it: what `--list` and `--show` print, with the full texts."""
    return {
        "id": f.id,
        "transcript_id": f.transcript_id,
        "exchange": f.exchange_number,
        "reason_kind": f.reason_kind,
        "reason": f.reason,
        "reasoning": f.reasoning,
        "original": f.original,
        "proposed": f.proposed,
        "continuity": {True: "follows", False: "breaks", None: None}[f.entailment_ok],
        "continuity_reasoning": f.entailment_reasoning,
        "decision": f.decision,
        "created_at": f.created_at,
    }


@click.group("report")
def report_group() -> None:
    """Summaries of what the pipeline did."""


@report_group.command("curation")
@click.option("--run", "run_id", help="Only this run (default: the whole workspace).")
@_json_option
@pass_app
def report_curation(app: AppContext, run_id: str | None, as_json: bool) -> None:
    """Counts of rejections and truncations by stage and reason, and of fixup decisions."""
    report = curation_report(app.store, run_id)
    if as_json:
        echo_json(
            {
                "run": run_id,
                "rejections": [
                    {"action": action, "stage": stage, "kind": kind, "reason": reason, "count": n}
                    for (action, stage, kind, reason), n in report.rejections
                ],
                "fixups": [
                    {"kind": kind, "decision": decision, "count": n} for (kind, decision), n in report.decisions
                ],
                "failing_criteria": [{"criterion": c, "count": n} for c, n in report.failing_criteria],
            }
        )
        return
    if report.empty:
        click.echo("nothing curated yet")
        return
    click.echo(f"{'action':<10} {'stage':<11} {'kind':<12} {'reason':<32} count")
    for (action, stage, kind, reason), n in report.rejections:
        click.echo(f"{action:<10} {stage:<11} {kind:<12} {_short(reason, 32):<32} {n:>5}")
    click.echo("\nfixups:")
    for (kind, decision), n in report.decisions:
        click.echo(f"  {kind:<10} {decision:<11} {n:>5}")
    if report.failing_criteria:
        click.echo(
            "\nfailing criteria behind rejections: " + ", ".join(f"{c} ×{n}" for c, n in report.failing_criteria)
        )
