"""Train: a placeholder until the training screen lands; shows the data that is ready for it."""

from __future__ import annotations

from sqlmodel import func, select

from state.models import TrainingExample, Transcript

from .placeholder import PlaceholderScreen


class TrainScreen(PlaceholderScreen):
    SECTION = "train"

    def text(self) -> str:
        store = self.app.store
        examples = store.count(TrainingExample)
        with store.session() as session:
            passed = session.exec(
                select(func.count()).select_from(Transcript).where(Transcript.status == "passed")
            ).one()
        return "\n".join([
            "# Train",
            "",
            "The live training view (loss, steps, merge → GGUF → quantize) arrives with the training issue.",
            "",
            f"- **{examples}** training examples sliced in this workspace; **{passed}** transcripts passed.",
            "- Headless meanwhile: `coach --help` lists the slicing and training commands available.",
            "- Chat with a model you exported: Chat screen → **ctrl+o** → pick the `.gguf`.",
        ])
