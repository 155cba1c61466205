"""The new-run form: the same knobs as `coach run`, validated before anything is written.

A modal rather than a pane: starting a run is a deliberate act that costs
model time, so it gets a moment of its own and can be cancelled with Escape.

It offers the run's minimum exchanges (what a cut transcript must keep) and
warns when a length class is too short to be cut at all: with lengths of 3
and the spec's minimum of 10, any rejected fixup rejects the whole
transcript. Its fields are `OrderedInput`s, so a character typed right after
a backspace is never lost.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Button, Input, Label, Select, Static

from actors.generation.run_plan import DEFAULT_LENGTHS, DEFAULT_MIX, allocate
from actors.usecases.curation import lengths_always_rejected

from ..run_control import REVIEW_MODES, RunRequest
from ..widgets.ordered_input import OrderedInput


def parse_lengths(text: str) -> dict[str, int]:
    """`short=20,medium=50` → {"short": 20, "medium": 50}; raises ValueError with a readable message."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected class=number, got {part!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{key.strip()}={value!r} is not a whole number") from None
        if number < 1:
            raise ValueError(f"{key.strip()} needs at least 1 exchange")
        out[key.strip()] = number
    unknown = set(out) - set(DEFAULT_LENGTHS)
    if unknown:
        raise ValueError(f"unknown length class {', '.join(sorted(unknown))} (use {', '.join(DEFAULT_LENGTHS)})")
    return {**DEFAULT_LENGTHS, **out}


def planned_exchanges(transcripts: int, lengths: dict[str, int]) -> int:
    """Exchanges the run will generate: the length classes are allocated exactly as `coach run` does."""
    return sum(count * lengths[c] for c, count in allocate(transcripts, DEFAULT_MIX).items())


SIZE_HINT = (
    "a long run on local models on a CPU (minutes per exchange at the default token caps): "
    "for a first look, try Lengths short=3,medium=3,long=3,very_long=3, Min exchanges 2 and Max tokens 160"
)


def short_length_warning(transcripts: int | None, lengths: dict[str, int], min_exchanges: int) -> str:
    """A warning when a length class the run will use is too short to keep `min_exchanges` after a cut."""
    used = lengths
    if transcripts is not None:
        counts = allocate(transcripts, DEFAULT_MIX)
        used = {name: n for name, n in lengths.items() if counts.get(name, 0)}
    short = lengths_always_rejected(used, min_exchanges)
    if not short:
        return ""
    named = ", ".join(f"{name}={used[name]}" for name in short)
    most = min(used[n] for n in short) - 1
    fix = f"Lower Min exchanges to {most} or less, or lengthen them." if most >= 1 else "Lengthen them."
    return (
        f"Lengths {named} are at or below Min exchanges {min_exchanges}: a rejected fixup there rejects the "
        f"whole transcript instead of cutting it. {fix}"
    )


class RunForm(ModalScreen[RunRequest | None]):
    DEFAULT_CSS = """
    RunForm { align: center middle; }
    RunForm > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
                         background: $surface; padding: 0 1; }
    RunForm #title { text-style: bold; padding: 0 0 1 0; }
    RunForm Grid { grid-size: 2; grid-columns: 14 1fr; grid-rows: auto; height: auto; grid-gutter: 0 1; }
    RunForm Grid Label { padding: 0 0; color: $text-muted; }
    RunForm #error { color: $error; height: auto; }
    RunForm #short-warning { color: $warning; height: auto; }
    RunForm #size { color: $text-muted; height: auto; padding: 1 0 0 0; }
    RunForm #buttons { height: auto; align-horizontal: right; padding: 1 0 0 0; }
    RunForm Button { margin: 0 0 0 1; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "start", "Start", priority=True, tooltip="Start the run"),
    ]

    def __init__(self, defaults: RunRequest | None = None, *, local_models: bool = False) -> None:
        super().__init__()
        self.defaults = defaults or RunRequest()
        self.local_models = local_models
        """The run would write with local llama.cpp models: a long run deserves a word of warning."""

    def compose(self) -> ComposeResult:
        d = self.defaults
        lengths = ",".join(f"{k}={v}" for k, v in d.lengths.items())
        with Vertical():
            yield Static("Start a run — generate persona conversations, judge and curate them", id="title")
            with Grid():
                yield Label("Transcripts")
                yield OrderedInput(
                    str(d.transcripts),
                    id="transcripts",
                    compact=True,
                    validators=[Integer(minimum=1, maximum=100_000)],
                    type="integer",
                )
                yield Label("Seed")
                yield OrderedInput(
                    "" if d.seed is None else str(d.seed),
                    id="seed",
                    compact=True,
                    placeholder="random (recorded with the run)",
                    type="integer",
                )
                yield Label("Lengths")
                yield OrderedInput(lengths, id="lengths", compact=True, tooltip="exchanges per length class")
                yield Label("Review")
                yield Select(
                    [
                        ("auto — apply fixups that pass their checks", "auto"),
                        ("review — every fixup waits for you (Review screen)", "review"),
                    ],
                    value=d.review_mode if d.review_mode in REVIEW_MODES else "auto",
                    allow_blank=False,
                    id="review",
                    compact=True,
                )
                yield Label("In flight")
                yield OrderedInput(
                    str(d.in_flight),
                    id="in-flight",
                    compact=True,
                    validators=[Integer(minimum=1, maximum=512)],
                    type="integer",
                )
                yield Label("Max tokens")
                yield OrderedInput(
                    "" if d.max_tokens is None else str(d.max_tokens),
                    id="max-tokens",
                    compact=True,
                    placeholder="per message (default: the pipeline's)",
                    type="integer",
                )
                yield Label("Min exchanges")
                yield OrderedInput(
                    str(d.min_exchanges),
                    id="min-exchanges",
                    compact=True,
                    type="integer",
                    tooltip="fewest exchanges a truncated transcript may keep",
                )
            yield Static("", id="size")
            yield Static("", id="short-warning")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Start  ^s", id="start", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#transcripts", Input).focus()
        self._show_size()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("transcripts", "lengths", "min-exchanges"):
            self._show_size()

    def _show_size(self) -> None:
        """How much work the form describes, before anything starts: the spec's lengths are long."""
        try:
            total = planned_exchanges(int(self._value("transcripts")), parse_lengths(self._value("lengths")))
        except ValueError:
            total = None
        text = "" if total is None else f"{total:,} exchanges in all"
        if total is not None and total > 40 and self.local_models:
            text += f" — {SIZE_HINT}"
        self.query_one("#size", Static).update(text)
        self._show_short_warning()

    def _show_short_warning(self) -> None:
        try:
            lengths = parse_lengths(self._value("lengths"))
            minimum = int(self._value("min-exchanges"))
        except ValueError:
            warning = ""
        else:
            try:
                transcripts: int | None = int(self._value("transcripts"))
            except ValueError:
                transcripts = None
            warning = short_length_warning(transcripts, lengths, minimum) if minimum >= 1 else ""
        self.query_one("#short-warning", Static).update(warning)

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def request(self) -> RunRequest:
        """The form as a request; raises ValueError naming the field that is wrong."""

        def whole(widget_id: str, label: str, minimum: int, optional: bool = False) -> int | None:
            text = self._value(widget_id)
            if not text and optional:
                return None
            try:
                number = int(text)
            except ValueError:
                raise ValueError(f"{label}: enter a whole number") from None
            if number < minimum:
                raise ValueError(f"{label}: at least {minimum}")
            return number

        try:
            lengths = parse_lengths(self._value("lengths"))
        except ValueError as err:
            raise ValueError(f"Lengths: {err}") from None
        return RunRequest(
            transcripts=whole("transcripts", "Transcripts", 1),
            seed=whole("seed", "Seed", 0, optional=True),
            lengths=lengths,
            review_mode=str(self.query_one("#review", Select).value),
            in_flight=whole("in-flight", "In flight", 1),
            max_tokens=whole("max-tokens", "Max tokens", 16, optional=True),
            min_exchanges=whole("min-exchanges", "Min exchanges", 1),
        )

    def action_start(self) -> None:
        try:
            request = self.request()
        except ValueError as err:
            self.query_one("#error", Static).update(str(err))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_start()
