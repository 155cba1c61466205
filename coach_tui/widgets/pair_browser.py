"""Browse an evaluation's conversation pairs: base and candidate side by side, and the judge's reasons per criterion.

Like inspect's log viewer: a list of samples on top (here, persona × run
pairs with each model's score), the highlighted one below. Two tabs:

- Conversation: one row per exchange, the base's on the left and the
  candidate's on the right, so the same turn of the same simulated person
  lines up (the person's messages drift apart once the replies differ: each
  side shows its own);
- Judge: one row per criterion, each model's answer and every judge's
  reasoning, criteria where the two models got different answers first.

The renderables are built by plain functions from the use case's data
(`actors.usecases.eval_pairs`), so they can be read without an app.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static, TabbedContent, TabPane

from actors.usecases.eval_pairs import EvalPair, PairSide, SideDetail

from .keyed_table import KeyedTable

ANSWER_STYLE = {"YES": "bold green", "NO": "bold red", "NA": "dim", "ERROR": "bold white on red"}


def score_text(side: PairSide | None) -> Text:
    if side is None:
        return Text("—", style="dim")
    if side.score is None:
        return Text(side.status, style="dim")
    mark, style = ("✓", "green") if side.passed else ("✗", "red")
    text = Text(f"{side.score:.2f} {mark}", style=style)
    if side.safety_failed:
        text.append(" safety", style="bold red")
    return text


def difference_text(pair: EvalPair) -> Text:
    d = pair.difference
    if d is None:
        return Text("")
    return Text(f"{d:+.2f}", style="dim" if d == 0 else "green" if d > 0 else "red")


def side_heading(role: str, side: PairSide | None) -> Text:
    if side is None:
        return Text(f"{role}: no conversation yet", style="dim")
    model = side.model.rsplit("/", 1)[-1]
    text = Text.assemble((f"{role} ", "bold"), (model, "bold cyan"), "  ", score_text(side))
    if side.failed_checks:
        text.append(f"\nfailed: {', '.join(side.failed_checks)}", style="red")
    text.append(f"\n{side.transcript_id}", style="dim")
    return text


def conversation_table(details: tuple[SideDetail | None, ...], roles: tuple[str, ...]) -> RenderableType:
    """One row per exchange number, one column per model."""
    table = Table(box=None, padding=(0, 1, 1, 0), expand=True, show_header=True, header_style="")
    table.add_column("#", justify="right", style="dim", width=3, no_wrap=True)
    for role, detail in zip(roles, details, strict=True):
        table.add_column(side_heading(role, detail.side if detail else None), ratio=1)
    numbers = sorted({n for d in details if d for n, _, _ in d.exchanges})
    by_side = [{n: (u, a) for n, u, a in d.exchanges} if d else {} for d in details]
    for n in numbers:
        cells: list[RenderableType] = [str(n)]
        for rows in by_side:
            if n not in rows:
                cells.append(Text("—", style="dim"))
                continue
            user, reply = rows[n]
            cells.append(
                Text.assemble(
                    ("user  ", "bold yellow"),
                    (user, "italic"),
                    "\n",
                    ("coach ", "bold cyan"),
                    reply or Text("(no reply yet)", style="dim"),
                )
            )
        table.add_row(*cells)
    if not numbers:
        return Text("No exchanges stored for this pair yet.", style="dim")
    return table


def _verdict_cell(detail: SideDetail | None, cid: str) -> Text:
    verdict = detail.verdicts.get(cid) if detail else None
    if verdict is None:
        return Text("not judged", style="dim")
    text = Text(verdict.answer, style=ANSWER_STYLE.get(verdict.answer, "bold"))
    several = len(verdict.answers) > 1
    for a in verdict.answers:
        text.append("\n")
        if several:
            text.append(f"{a.judge}: ", style="dim")
            text.append(a.answer, style=ANSWER_STYLE.get(a.answer, ""))
            text.append(" — ")
        text.append(a.reasoning or "(no reasoning given)", style="" if a.reasoning else "dim")
    return text


def judge_table(
    details: tuple[SideDetail | None, ...],
    roles: tuple[str, ...],
    names: dict[str, str],
    safety_gates: tuple[str, ...] = (),
) -> RenderableType:
    """One row per criterion: each model's answer and every judge's reasoning; disagreements first."""
    order = {cid: i for i, cid in enumerate(names)}
    criteria = sorted({cid for d in details if d for cid in d.verdicts}, key=lambda c: (order.get(c, len(order)), c))
    if not criteria:
        return Text("Not judged yet: the judge's answers appear here once this pair is assessed.", style="dim")

    def answers(cid: str) -> tuple[str | None, ...]:
        return tuple((d.verdicts[cid].answer if d and cid in d.verdicts else None) for d in details)

    differ = [c for c in criteria if len(set(answers(c))) > 1]
    same = [c for c in criteria if c not in differ]
    table = Table(box=None, padding=(0, 1, 1, 0), expand=True, header_style="bold")
    table.add_column("criterion", ratio=1, min_width=12)
    for role in roles:
        table.add_column(role, ratio=2)
    for cid in differ + same:
        label = Text(cid, style="bold")
        if cid in names:
            label.append(f"\n{names[cid]}", style="dim")
        if cid in safety_gates:
            label.append("\nsafety gate", style="bold red")
        if cid in differ and len(details) > 1:
            label.append("\n≠ differs", style="yellow")
        table.add_row(label, *(_verdict_cell(d, cid) for d in details))
    head = Text(
        f"{len(differ)} criterion(s) answered differently" if len(details) > 1 else f"{len(criteria)} criteria",
        style="dim",
    )
    return Group(head, table)


class PairsTable(KeyedTable):
    DEFAULT_CSS = "PairsTable { height: auto; max-height: 7; }"

    def __init__(self, roles: tuple[str, ...], **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.roles = roles
        self._shown: list[EvalPair] | None = None

    def on_mount(self) -> None:
        self.add_column("pair", key="pair")
        self.add_column("persona", key="persona", width=28)
        for role in self.roles:
            self.add_column(role, key=role)
        if len(self.roles) == 2:
            self.add_column("Δ", key="delta")

    def show(self, pairs: list[EvalPair]) -> None:
        if pairs == self._shown:
            return
        keep = self.selected_key
        self._shown = list(pairs)
        self.clear()
        for pair in pairs:
            cells = [pair.key, pair.persona, *(score_text(s) for s in pair.sides)]
            if len(self.roles) == 2:
                cells.append(difference_text(pair))
            self.add_row(*cells, key=pair.key)
        self.keep_cursor_on(keep)


class PairView(Vertical):
    """The highlighted pair: who the person is, then the two tabs."""

    DEFAULT_CSS = """
    PairView { height: 1fr; }
    PairView #pair-head { height: auto; padding: 0 1; }
    PairView TabbedContent { height: 1fr; }
    PairView TabPane { padding: 0; }
    PairView VerticalScroll { height: 1fr; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="pair-head")
        with TabbedContent(initial="pair-conversation-tab"):
            with TabPane("Conversation", id="pair-conversation-tab"), VerticalScroll(id="pair-conversation-scroll"):
                yield Static("", id="pair-conversation")
            with TabPane("Judge", id="pair-judge-tab"), VerticalScroll(id="pair-judge-scroll"):
                yield Static("", id="pair-judge")

    def show(
        self,
        pair: EvalPair,
        details: tuple[SideDetail | None, ...],
        roles: tuple[str, ...],
        names: dict[str, str],
        safety_gates: tuple[str, ...],
    ) -> None:
        head = Text.assemble(
            (f"persona {pair.persona_index}, run {pair.run_index}", "bold"), "  ", (pair.persona, "italic")
        )
        self.query_one("#pair-head", Static).update(head)
        self.query_one("#pair-conversation", Static).update(conversation_table(details, roles))
        self.query_one("#pair-judge", Static).update(judge_table(details, roles, names, safety_gates))

    def show_message(self, message: str) -> None:
        self.query_one("#pair-head", Static).update(Text(message, style="yellow"))
        self.query_one("#pair-conversation", Static).update("")
        self.query_one("#pair-judge", Static).update("")

    def toggle(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "pair-judge-tab" if tabs.active == "pair-conversation-tab" else "pair-conversation-tab"
