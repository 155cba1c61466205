"""One training run in words: where it is now, what it left on disk, and the command that comes next.

The numbers are the trainer's own (its latest `TrainingProgress` event and
the run record's final metrics); paths that no longer exist on disk are
marked, since a checkpoint or an export may have been moved since.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from actors.usecases.training import TrainingSnapshot, existing

from ..formatting import duration
from .run_list import run_status_text
from .train_runs_table import steps_text

EMPTY_STEPS = (
    ("No training runs in this workspace yet.\n\n", "bold"),
    "1. Slice the passed transcripts into training examples (",
    ("s", "bold"),
    " here, or):\n",
    ("   coach slice --out training_data.jsonl\n", "bold cyan"),
    "2. Fine-tune (",
    ("t", "bold"),
    "; tiny: the bundled Gemma 3 270M, minutes on a CPU; gemma-3-12b needs a CUDA GPU):\n",
    ("   coach train --data training_data.jsonl --preset tiny\n", "bold cyan"),
    "3. Merge, convert to GGUF and quantize, with an Ollama Modelfile (",
    ("e", "bold"),
    "):\n",
    ("   coach export-model\n", "bold cyan"),
    "Then chat with it (3, then ctrl+o) or compare it with the base (5, then c):\n",
    ("   coach eval compare --base gemma3-270m --candidate PATH.gguf\n\n", "bold cyan"),
    (
        "Jobs started here run in the background and keep running if you quit (x stops one). Runs started "
        "from the command line are listed here too; a running one updates by itself.",
        "dim",
    ),
)


def empty_text(passed: int, examples: int) -> Text:
    text = Text.assemble(*EMPTY_STEPS)
    text.append(
        f"\n\nThis workspace has {passed} passed transcript(s) and {examples} sliced training example(s).", style="dim"
    )
    return text


def _path(label: str, path: str | None) -> tuple[Text, Text]:
    shown = Text(path or "—", style="" if existing(path) or not path else "dim strike")
    if path and not existing(path):
        shown.append("  (no longer on disk)", style="yellow")
    return Text(label, style="dim"), shown


class TrainDetail(Static):
    DEFAULT_CSS = "TrainDetail { width: 100%; height: auto; }"

    def show_empty(self, passed: int, examples: int) -> None:
        self.update(empty_text(passed, examples))

    def show_problem(self, run_id: str, message: str) -> None:
        self.update(Text.assemble((f"{run_id}\n", "bold"), (message, "yellow")))

    def show(self, snap: TrainingSnapshot) -> None:
        info, p = snap.info, snap.progress
        head = Text.assemble(
            (info.id, "bold"),
            "  ",
            run_status_text(info.status),
            f"  preset {info.preset}",
            (f" · {snap.model}" if snap.model else "", "dim"),
            (f" · {snap.device}" if snap.device else "", "dim"),
        )
        now = Table.grid(padding=(0, 2))
        now.add_column(style="dim")
        now.add_column()
        now.add_row(
            "step",
            steps_text(info.step, info.max_steps) + (f" · epoch {p['epoch']}" if p.get("epoch") is not None else ""),
        )
        now.add_row("loss", "–" if info.last_loss is None else f"{info.last_loss:.4f}")
        if p.get("lr") is not None:
            now.add_row("learning rate", f"{p['lr']:.2e}")
        if p.get("tokens_per_s"):
            now.add_row("tokens/s", f"{p['tokens_per_s']:,.0f}")
        if snap.live and p.get("eta_s") is not None:
            now.add_row("ETA", duration(p["eta_s"]))
        if p.get("elapsed_s") is not None:
            now.add_row("elapsed", duration(p["elapsed_s"]))
        m = snap.metrics
        if m.get("train_loss") is not None:
            now.add_row("train loss (mean)", f"{m['train_loss']:.4f}")
        if m.get("train_runtime_s") is not None:
            now.add_row("runtime", duration(m["train_runtime_s"]))
        if m.get("examples") is not None:
            now.add_row("examples · tokens", f"{m['examples']:,} · {m.get('tokens') or 0:,}")
        parts: list[RenderableType] = [head]
        if snap.error:
            parts.append(Text(f"error: {snap.error}", style="red"))
        parts += [Text(""), now]
        parts += [Text(f"note: {note}", style="dim") for note in snap.notes]

        files = Table.grid(padding=(0, 2))
        files.add_column()
        files.add_column()
        # The trainer deletes older checkpoints as it saves new ones: list those still there.
        kept = [(step, path) for step, path in snap.checkpoints if existing(path)]
        for step, path in kept[-3:]:
            files.add_row(Text(f"checkpoint {step}", style="dim"), Text(path))
        if snap.checkpoints and not kept:
            files.add_row(
                Text("checkpoints", style="dim"),
                Text(f"{len(snap.checkpoints)} saved, none left on disk", style="yellow"),
            )
        if snap.paths.get("adapter"):
            files.add_row(*_path("adapter", snap.paths["adapter"]))
        export = snap.export
        if export.get("gguf"):
            verified = " ✓ verified" if export.get("verified") else ""
            files.add_row(*_path(f"GGUF {export.get('quant', '')}{verified}".strip(), export["gguf"]))
            if export.get("gguf_f16") and export.get("gguf_f16") != export["gguf"]:
                files.add_row(*_path("GGUF f16", export["gguf_f16"]))
            if export.get("modelfile"):
                files.add_row(*_path("Ollama Modelfile", export["modelfile"]))
        if files.row_count:
            parts += [Text("\nFiles", style="bold underline"), files]
        parts += [Text("\nNext", style="bold underline"), self._next(snap, self.app.pack.name)]
        self.update(Group(*parts))

    @staticmethod
    def _next(snap: TrainingSnapshot, model_name: str) -> Text:
        text = Text()
        status, export = snap.info.status, snap.export
        if export.get("gguf"):
            name = Path(export["gguf"]).name
            text.append("Chat with it: ")
            text.append(f"3 (Chat), ctrl+o, pick {name} (or type its path)\n", style="bold")
            if export.get("modelfile"):
                text.append("Run it in Ollama: ")
                text.append(f"ollama create {model_name} -f {export['modelfile']}\n", style="bold cyan")
            text.append("Compare it with the base (5, then c), or: ")
            text.append(snap.eval_command or "", style="bold cyan")
        elif status == "finished":
            text.append("Export it to GGUF (merge, convert, quantize, Modelfile) — e, or: ")
            text.append(snap.export_command, style="bold cyan")
        elif snap.live:
            text.append(
                "Training: this view updates every 2 s. If its process was stopped, continue it with: ", style="yellow"
            )
            text.append(snap.resume_command, style="bold cyan")
        else:
            text.append(f"Unfinished ({status}): continue it from its last checkpoint with: ", style="yellow")
            text.append(snap.resume_command, style="bold cyan")
        text.append("  (y copies the command)", style="dim")
        return text
