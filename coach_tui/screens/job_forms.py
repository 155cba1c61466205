"""Forms that start a background job: slice, train, export-model, eval compare; and what a stop will do.

Each form gathers the options of one `coach` command, parses what was typed
(whole numbers, fractions) and asks the use case to check the rest
(`actors.usecases.jobs.plan_*`: files exist, the preset is known, the models
resolve). A mistake is shown under the form naming its field, and that field
is focused and marked; nothing starts until the form is clean. The form
returns the checked `JobPlan`; the screen starts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from actors.usecases.jobs import (
    LOSSES,
    METHODS,
    OVER_LENGTH,
    OVER_LIMIT,
    QUANTS,
    CompareJob,
    ExportJob,
    FieldProblem,
    JobPlan,
    SliceJob,
    TrainJob,
    plan_compare,
    plan_export,
    plan_slice,
    plan_train,
)

from ..widgets.ordered_input import OrderedInput


def whole(label: str, text: str, *, optional: bool = False) -> int | None:
    """A whole number typed in field `label`; FieldProblem naming the field otherwise."""
    text = text.strip().replace("_", "").replace(",", "")
    if not text and optional:
        return None
    try:
        return int(text)
    except ValueError:
        raise FieldProblem(label, f"enter a whole number, not {text!r}" if text else "enter a whole number") from None


def fraction(label: str, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FieldProblem(label, f"enter a number such as 0.1, not {text!r}") from None
    if value != value:  # NaN
        raise FieldProblem(label, "enter a number such as 0.1")
    return value


class JobForm(ModalScreen[JobPlan | None]):
    """A modal with a grid of labelled fields, a line for the problem, and Cancel / Start."""

    DEFAULT_CSS = """
    JobForm { align: center middle; }
    JobForm > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
                         background: $surface; padding: 0 1; }
    JobForm #title { text-style: bold; padding: 0 0 1 0; }
    JobForm Grid { grid-size: 2; grid-columns: 14 1fr; grid-rows: auto; height: auto; grid-gutter: 0 1; }
    JobForm Grid Label { color: $text-muted; }
    JobForm .-invalid { border-left: outer $error; }
    JobForm #hint { color: $text-muted; height: auto; padding: 1 0 0 0; }
    JobForm #error { color: $error; height: auto; }
    JobForm #buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    JobForm Button { margin: 0 0 0 1; }
    """
    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "start", "Start", priority=True)]
    TITLE_TEXT = ""
    FIELDS: ClassVar[dict[str, str]] = {}
    """Field label (as a FieldProblem names it) → widget id."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.TITLE_TEXT, id="title")
            with Grid():
                yield from self.compose_fields()
            yield Static(self.hint(), id="hint")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Start  ^s", id="start", variant="primary", compact=True)

    def compose_fields(self) -> ComposeResult:  # pragma: no cover - every form says
        raise NotImplementedError

    def hint(self) -> str:
        return ""

    def plan(self) -> JobPlan:  # pragma: no cover - every form says
        """The form as a checked plan; raises FieldProblem."""
        raise NotImplementedError

    def on_mount(self) -> None:
        first = next(iter(self.FIELDS.values()), None)
        if first:
            self.query_one(f"#{first}").focus()

    def value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def choice(self, widget_id: str) -> str:
        return str(self.query_one(f"#{widget_id}", Select).value)

    def show_problem(self, problem: FieldProblem) -> None:
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")
        self.query_one("#error", Static).update(f"{problem.field}: {problem.message}")
        widget_id = self.FIELDS.get(problem.field)
        if widget_id:
            target: Widget = self.query_one(f"#{widget_id}")
            target.add_class("-invalid")
            target.focus()

    def action_start(self) -> None:
        try:
            plan = self.plan()
        except FieldProblem as problem:
            self.show_problem(problem)
            return
        self.dismiss(plan)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_start()


def _input(value: object, widget_id: str, placeholder: str = "", **kwargs) -> Input:
    """A compact field that applies keys in the order typed (`OrderedInput`: no character lost after a deletion)."""
    text = "" if value is None else str(value)
    return OrderedInput(text, id=widget_id, placeholder=placeholder, compact=True, **kwargs)


class SliceForm(JobForm):
    TITLE_TEXT = "Slice passed transcripts into training examples (coach slice)"
    FIELDS: ClassVar = {
        "Out": "out",
        "Max tokens": "max-tokens",
        "Over limit": "over-limit",
        "Min context": "min-context",
        "Seed": "seed",
        "Pairs": "pairs",
    }

    def __init__(
        self,
        out: Path,
        passed_transcripts: int,
        *,
        max_tokens: int = 120_000,
        min_context: int = 3,
        pairs_hint: Path | None = None,
    ):
        super().__init__()
        self.out, self.passed, self.max_tokens, self.min_context = out, passed_transcripts, max_tokens, min_context
        self.pairs_hint = pairs_hint

    def compose_fields(self) -> ComposeResult:
        yield Label("Out")
        yield _input(self.out, "out", "training data file to write (JSONL)")
        yield Label("Max tokens")
        yield _input(self.max_tokens, "max-tokens", type="integer")
        yield Label("Over limit")
        yield Select(
            [(o, o) for o in OVER_LIMIT], value=OVER_LIMIT[0], allow_blank=False, id="over-limit", compact=True
        )
        yield Label("Min context")
        yield _input(self.min_context, "min-context", type="integer")
        yield Label("Seed")
        yield _input(None, "seed", "the pack's slicing seed")
        yield Label("Pairs")
        yield _input(None, "pairs", "also write DPO preference pairs to this file (blank: none)")

    def hint(self) -> str:
        pairs = f" Pairs for coach train --method dpo, e.g. {self.pairs_hint}" if self.pairs_hint else ""
        return (
            f"{self.passed} passed transcript(s) in this workspace. Re-slicing replaces the previous examples.{pairs}"
        )

    def plan(self) -> JobPlan:
        job = SliceJob(
            out=Path(self.value("out")),
            max_tokens=whole("Max tokens", self.value("max-tokens")),
            over_limit=self.choice("over-limit"),
            min_context=whole("Min context", self.value("min-context")),
            seed=whole("Seed", self.value("seed"), optional=True),
            pairs=Path(self.value("pairs")) if self.value("pairs") else None,
        )
        return plan_slice(job, passed_transcripts=self.passed)


NO_OVER_LENGTH = "refuse"


class TrainForm(JobForm):
    TITLE_TEXT = "Fine-tune on the training examples (coach train)"
    FIELDS: ClassVar = {
        "Data": "data",
        "Preset": "preset",
        "Method": "method",
        "From adapter": "from-adapter",
        "Steps": "steps",
        "Validation": "val-fraction",
        "Loss": "loss",
        "Over length": "over-length",
    }

    def __init__(
        self, data: Path, presets: list[str], *, presets_file: Path | None = None, pairs: Path | None = None
    ) -> None:
        super().__init__()
        self.data, self.presets, self.presets_file = data, presets, presets_file
        self.pairs = pairs
        """The default pairs file: picking dpo swaps it in for the untouched default examples file."""

    def compose_fields(self) -> ComposeResult:
        yield Label("Data")
        yield _input(self.data, "data", "training data (coach slice writes it)")
        yield Label("Preset")
        default = "tiny" if "tiny" in self.presets else (self.presets[0] if self.presets else Select.BLANK)
        yield Select([(p, p) for p in self.presets], value=default, allow_blank=False, id="preset", compact=True)
        yield Label("Method")
        yield Select([(m, m) for m in METHODS], value=METHODS[0], allow_blank=False, id="method", compact=True)
        yield Label("From adapter")
        yield _input(None, "from-adapter", "dpo/grpo: a run id or adapter folder (blank: new)")
        yield Label("Steps")
        yield _input(None, "steps", "the preset's")
        yield Label("Validation")
        yield _input(None, "val-fraction", "held-out share, default 0.1 (≥ 10 conversations)")
        yield Label("Loss")
        yield Select([(loss, loss) for loss in LOSSES], value=LOSSES[0], allow_blank=False, id="loss", compact=True)
        yield Label("Over length")
        yield Select(
            [("refuse — stop before training", NO_OVER_LENGTH), *((o, o) for o in OVER_LENGTH)],
            value=NO_OVER_LENGTH,
            allow_blank=False,
            id="over-length",
            compact=True,
        )
        yield Label("Resume")
        yield Checkbox("continue the last unfinished run of this data", id="resume", compact=True)

    def hint(self) -> str:
        return (
            "tiny: the bundled Gemma 3 270M, minutes on a CPU. The loss plot follows the run as it trains. "
            "sft reads examples, dpo the pairs a slice with Pairs writes, grpo either (the judge scores samples)."
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        """dpo reads pairs: swap the default file in (and back for sft), never a file a person typed."""
        if event.select.id != "method" or self.pairs is None:
            return
        data = self.query_one("#data", Input)
        if event.value == "dpo" and data.value == str(self.data):
            data.value = str(self.pairs)
        elif event.value == "sft" and data.value == str(self.pairs):
            data.value = str(self.data)

    def plan(self) -> JobPlan:
        over = self.choice("over-length")
        preset = self.query_one("#preset", Select).value
        job = TrainJob(
            data=Path(self.value("data")),
            preset="" if preset is Select.BLANK else str(preset),
            steps=whole("Steps", self.value("steps"), optional=True),
            val_fraction=fraction("Validation", self.value("val-fraction")),
            loss=self.choice("loss"),
            over_length=None if over == NO_OVER_LENGTH else over,
            resume=self.query_one("#resume", Checkbox).value,
            method=self.choice("method"),
            from_adapter=self.value("from-adapter") or None,
        )
        return plan_train(job, presets_file=self.presets_file)


class ExportForm(JobForm):
    TITLE_TEXT = "Export a training run: merge, GGUF, quantize, Modelfile (coach export-model)"
    FIELDS: ClassVar = {"Run": "run", "Quantization": "quant"}

    def __init__(self, runs: dict[str, str], selected: str | None = None) -> None:
        """`runs`: the finished training runs, id → adapter folder, newest first."""
        super().__init__()
        self.runs = runs
        self.selected = selected if selected in runs else next(iter(runs), None)

    def compose_fields(self) -> ComposeResult:
        yield Label("Run")
        yield Select(
            [(run_id, run_id) for run_id in self.runs],
            value=self.selected if self.selected else Select.BLANK,
            allow_blank=not self.runs,
            prompt="no finished training run yet",
            id="run",
            compact=True,
        )
        yield Label("Quantization")
        yield Select([(q, q) for q in QUANTS], value=QUANTS[0], allow_blank=False, id="quant", compact=True)
        yield Label("Verify")
        yield Checkbox("load the GGUF and check it answers", value=True, id="verify", compact=True)

    def plan(self) -> JobPlan:
        run = self.query_one("#run", Select).value
        job = ExportJob(
            run="" if run is Select.BLANK else str(run),
            quant=self.choice("quant"),
            verify=self.query_one("#verify", Checkbox).value,
        )
        return plan_export(job, finished_runs=self.runs)


class CompareForm(JobForm):
    TITLE_TEXT = "Compare two models on new personas (coach eval compare)"
    FIELDS: ClassVar = {
        "Base": "base",
        "Candidate": "candidate",
        "Personas": "personas",
        "Runs": "runs",
        "Exchanges": "exchanges",
        "Seed": "seed",
        "Max tokens": "max-tokens",
    }

    def __init__(self, base: str, candidate: str, *, config_path: Path | None = None) -> None:
        super().__init__()
        self.base, self.candidate, self.config_path = base, candidate, config_path

    def compose_fields(self) -> ComposeResult:
        yield Label("Base")
        yield _input(self.base, "base", "bundled model, .gguf path or backend name")
        yield Label("Candidate")
        yield _input(self.candidate, "candidate", "e.g. the exported fine-tune's .gguf")
        yield Label("Personas")
        yield _input(5, "personas", type="integer")
        yield Label("Runs")
        yield _input(1, "runs", type="integer")
        yield Label("Exchanges")
        yield _input(20, "exchanges", type="integer")
        yield Label("Seed")
        yield _input(9000, "seed", type="integer")
        yield Label("Max tokens")
        yield _input(None, "max-tokens", "per message (default: the pipeline's)")

    def hint(self) -> str:
        return (
            "Both models meet the same new personas; on local models a first look of 2 personas × 4 exchanges is quick."
        )

    def plan(self) -> JobPlan:
        job = CompareJob(
            base=self.value("base"),
            candidate=self.value("candidate"),
            personas=whole("Personas", self.value("personas")),
            runs=whole("Runs", self.value("runs")),
            exchanges=whole("Exchanges", self.value("exchanges")),
            seed=whole("Seed", self.value("seed")),
            max_tokens=whole("Max tokens", self.value("max-tokens"), optional=True),
        )
        return plan_compare(job, config_path=self.config_path)


def stop_question(job_id: str, title: str, signal_name: str, stop_requests: int) -> str:
    if stop_requests:
        return f"Kill job {job_id} ({title}) now?\nIt was asked to stop already; SIGKILL ends it at once."
    what = (
        "as Ctrl-C: a training finishes its step and saves a checkpoint, an evaluation stops; both can be resumed"
        if signal_name == "SIGINT"
        else "it ends now; what it wrote before is kept whole"
    )
    return f"Stop job {job_id} ({title})?\nIt gets {signal_name}: {what}."
