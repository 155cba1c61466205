"""Exporting a trained model: merge the adapter, convert to GGUF, quantize, write a Modelfile, check it answers.

`coach export-model` is the face today; the files, and the Ollama model
(`ollama create NAME`), are named after the domain pack, so exports of
different domains never look alike. The export is recorded on the training
run whatever its verification says, so a model that loads but does not
answer (empty, an echo of its prompt, template tokens) is still on record,
and reported as a clear error with the reason.
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

__all__ = ["ExportNotVerified", "ExportRequest", "check_export_request", "export_model"]


class ExportNotVerified(CoachError):
    """The export is written and recorded, but the GGUF's reply failed the check; `result` holds it all."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


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


def check_export_request(store: Store, request: ExportRequest) -> None:
    """The request's own mistakes, told before the training libraries import or any model loads.

    An unknown quantization, or a run that is not in the workspace. (A run
    without a trained adapter is told by the export itself, also before
    anything loads.)
    """
    from actors.training.export import quant_ftype
    from actors.training.records import get_train_run

    quant_ftype(request.quant)
    get_train_run(store, request.run)


def export_model(
    store: Store,
    pack: DomainPack,
    request: ExportRequest,
    *,
    note: Callable[[str], None] = lambda _: None,
    workspace: Path | None = None,
) -> ExportResult:
    """Export the training run `request.run`; returns the `ExportResult` (paths, quantization, the reply).

    `workspace`: where the model card looks for the latest comparison report.
    """
    from actors.training.models import calm_cpu_threads, require_training_stack

    calm_cpu_threads()
    require_training_stack()
    from actors.training.export import VERIFY_PROMPT
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
        workspace=workspace,
    )
    if request.verify and not result.verified:
        pushed = " Nothing was pushed to the Hub." if request.hub_repo else ""
        raise ExportNotVerified(
            f"the exported GGUF {result.gguf} failed verification: {result.verify_problem}.\n"
            f"llama.cpp replied {result.reply[:200]!r} to {VERIFY_PROMPT!r}.\n"
            f"The files are written and recorded ({result.out_dir}); train longer or on more data, "
            f"or export with --no-verify to keep this model anyway.{pushed}",
            result,
        )
    return result
