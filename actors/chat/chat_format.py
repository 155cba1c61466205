"""Which chat format a model is spoken to in, and how anyone can tell: decided before it loads.

A GGUF opened by path (the picker's ctrl+o, `coach export-model`'s output)
must be prompted in the format it was trained on and stopped at its own
end-of-turn token; the wrong one gives template garbage ("…を購入user I
believe…"). So the chat never guesses. In order:

1. the file's own template, ``tokenizer.chat_template`` in its GGUF metadata,
   with its EOS token and the end-of-turn marker the template writes as stops;
2. the training run that exported it (its store record names the chat family);
3. the Modelfile `coach export-model` wrote beside it (its TEMPLATE and stops);
4. a Gemma architecture with no template (the bundled Gemma 3 270M base):
   Gemma 3's turns, as the backend's ``auto`` does;
5. otherwise a `CoachError` that names the file and what was looked at.

A bundled model is known by name; a server model (``server:NAME``) applies
its own template on the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.backends import gemma3_format as gemma3
from state.errors import CoachError

from .gguf_info import GGUFInfo, read_gguf

SERVER_PREFIX = "server:"
CHATML_STOPS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


@dataclass(frozen=True)
class PromptFormat:
    """How one model is prompted: the backend's ``chat_format``, where that was learned, the stops."""

    chat_format: str
    """A llama_cpp backend's ``chat_format``: "gguf" (the file's template), "gemma3", "chatml"; "server"."""
    source: str
    """Where it came from, in words, for the status line and errors."""
    stops: tuple[str, ...] = ()
    """Tokens that end a reply, as text (the backend stops on their ids; the engine also cuts at their text)."""


def is_server_model(model: str) -> bool:
    return model.startswith(SERVER_PREFIX)


def resolve_chat_format(model: str, *, exports: list[dict[str, Any]] | None = None) -> PromptFormat:
    """The chat format for a bundled name, a GGUF path or a server model (see the module docstring).

    ``exports``: the workspace's export records (`actors.training.records.exported_models`), for
    a file with no template of its own. Reads only the file's header (blocking: call from a thread).
    """
    if is_server_model(model):
        return PromptFormat("server", "the server's own template")
    from actors.backends.bundled import BUNDLED, bundled_path

    if model in BUNDLED:
        info = read_gguf(bundled_path(model))
        if BUNDLED[model].chat_format == "gemma3":
            return PromptFormat("gemma3", "Gemma 3 turns (bundled base model, no template in the file)", gemma3.STOP)
        return PromptFormat("gguf", "its GGUF metadata (tokenizer.chat_template)", info.stop_tokens)
    return format_for_file(Path(model), exports=exports)


def format_for_file(path: Path, *, exports: list[dict[str, Any]] | None = None) -> PromptFormat:
    info = read_gguf(path)
    if info.chat_template:
        return PromptFormat("gguf", "its GGUF metadata (tokenizer.chat_template)", info.stop_tokens)
    family = _from_training_run(path, exports or [])
    if family is not None:
        return family
    family = _from_modelfile(path)
    if family is not None:
        return family
    if info.architecture.startswith("gemma"):
        return PromptFormat("gemma3", "Gemma 3 turns (a Gemma model with no template in the file)", gemma3.STOP)
    raise CoachError(
        f"{path.name} has no chat template in its GGUF metadata (tokenizer.chat_template, architecture "
        f"{info.architecture or 'unknown'!r}), no training run in this workspace exported it, and there is no "
        f"Modelfile beside it ({path.parent}) naming its format: coach will not guess a template, which "
        "gives garbage replies. Use a GGUF that carries its chat template (convert the model with its tokenizer), "
        "or export it with coach export-model"
    )


def _family_format(family: str, source: str, stops: tuple[str, ...] = ()) -> PromptFormat | None:
    if family == "gemma3":
        return PromptFormat("gemma3", source, stops or gemma3.STOP)
    if family == "chatml":
        return PromptFormat("chatml", source, stops or CHATML_STOPS)
    return None


def _same_file(a: str | Path, b: Path) -> bool:
    try:
        return Path(a).expanduser().resolve() == b.resolve()
    except OSError:
        return False


def _from_training_run(path: Path, exports: list[dict[str, Any]]) -> PromptFormat | None:
    for export in exports:
        files = [export.get("gguf"), export.get("gguf_f16")]
        if any(f and _same_file(f, path) for f in files):
            run = export.get("run_id", "?")
            return _family_format(str(export.get("chat_family") or ""), f"training run {run}, which exported it")
    return None


_FROM = re.compile(r"^FROM\s+(?P<file>\S+)\s*$", re.MULTILINE)
_STOP = re.compile(r'^PARAMETER\s+stop\s+"(?P<stop>[^"]+)"\s*$', re.MULTILINE)


def _from_modelfile(path: Path) -> PromptFormat | None:
    """The family of the Modelfile beside the GGUF, when its FROM names this file."""
    modelfile = path.parent / "Modelfile"
    try:
        text = modelfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    source = _FROM.search(text)
    if source is None or not _same_file(path.parent / source.group("file"), path):
        return None
    stops = tuple(m.group("stop") for m in _STOP.finditer(text))
    if gemma3.START in text:
        return _family_format("gemma3", f"the Modelfile beside it ({modelfile})", stops)
    if "<|im_start|>" in text:
        return _family_format("chatml", f"the Modelfile beside it ({modelfile})", stops)
    return None


def describe_model(model: str) -> str:
    """A model as people read it: a bundled name, a GGUF's file name, or "NAME (server)"."""
    if not model:
        return "unknown model"
    if is_server_model(model):
        return f"{model.removeprefix(SERVER_PREFIX)} (server)"
    if "/" in model or model.endswith(".gguf"):
        return Path(model).name
    return model


__all__ = [
    "SERVER_PREFIX",
    "GGUFInfo",
    "PromptFormat",
    "describe_model",
    "format_for_file",
    "is_server_model",
    "resolve_chat_format",
]
