"""Exporting a trained model: merge the adapter, convert to GGUF, quantize, write a Modelfile, check it answers.

`coach export-model` is the face today; the files are named after the domain
pack, so exports of different domains never look alike. The export is
recorded on the training run before it is verified, so a model that loads
but says nothing is still on record (and reported as a clear error).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from actors.pack.loader import DomainPack
from state.errors import CoachError
from state.store import Store

if TYPE_CHECKING:
    from actors.training.export import ExportResult

__all__ = ["ExportRequest", "export_model"]


class ExportRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    run: str = "latest"
    """A training run id, or "latest"."""
    quant: str = "Q4_K_M"
    """A llama.cpp quantization (Q4_K_M, Q8_0, …) or F16 for none."""
    out: Path | None = None
    """Folder for the merged checkpoint, the GGUFs and the Modelfile (default: the run's folder)."""
    hub_repo: str | None = None
    """Also upload everything to this (private) Hugging Face Hub repo."""
    verify: bool = True
    """Load the GGUF with llama.cpp and generate a reply."""


def export_model(
    store: Store, pack: DomainPack, request: ExportRequest, *, note: Callable[[str], None] = lambda _: None
) -> ExportResult:
    """Export the training run `request.run`; returns the `ExportResult` (paths, quantization, the reply)."""
    from actors.training.models import calm_cpu_threads, require_training_stack

    calm_cpu_threads()
    require_training_stack()
    from actors.training.export import export_model as run_export

    result = run_export(
        store,
        request.run,
        quant=request.quant,
        out=request.out,
        system_prompt=pack.system_prompt,
        name=pack.name,
        note=note,
        verify=request.verify,
        hub_repo=request.hub_repo,
    )
    if request.verify and not result.verified:
        raise CoachError(f"the exported GGUF {result.gguf} loaded but generated nothing")
    return result
