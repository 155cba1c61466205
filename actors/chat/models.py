"""The models a person can chat with, and what each one is: for the model picker and the status line.

Four kinds, in the order they are offered: the bundled models (by name), the
GGUFs training exported (the workspace's export records, then any GGUF found
under the workspace), and the run config's OpenAI-compatible servers (Ollama,
vLLM, a llama.cpp server) as ``server:NAME``; any other GGUF is opened by
path. Listing touches no file beyond a directory walk; `describe` reads a
GGUF's header for its size, quantisation and context length (call it from a
thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.errors import CoachError

from .chat_format import SERVER_PREFIX
from .gguf_info import read_gguf


@dataclass(frozen=True)
class ModelOption:
    id: str
    """What the conversation records: a bundled name, an absolute GGUF path, or ``server:NAME``."""
    name: str
    kind: str
    """"bundled", "exported", "file" or "server"."""
    detail: str
    """A description, the folder of a file, or a server's address."""


def exported_models(workspace: Path, limit: int = 20) -> list[Path]:
    """GGUF files under the workspace (where training exports land), newest first, a few levels deep."""
    found: list[Path] = []
    for pattern in ("*.gguf", "*/*.gguf", "*/*/*.gguf", "*/*/*/*.gguf"):
        try:
            found.extend(p for p in workspace.glob(pattern) if p.is_file())
        except OSError:
            continue
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def model_options(
    workspace: Path | None, *, exports: list[dict[str, Any]] | None = None, run_config: Any = None
) -> list[ModelOption]:
    """Every model to offer, bundled first, without reading any model file."""
    from actors.backends.bundled import BUNDLED

    options = [ModelOption(m.name, m.name, "bundled", m.description) for m in BUNDLED.values()]
    seen: set[str] = set()
    for export in exports or []:
        path = Path(str(export.get("gguf", ""))).resolve()
        if str(path) not in seen and path.is_file():
            seen.add(str(path))
            options.append(ModelOption(str(path), path.name, "exported", f"training run {export.get('run_id', '?')}"))
    for path in exported_models(workspace) if workspace is not None else []:
        resolved = str(path.resolve())
        if resolved not in seen:
            seen.add(resolved)
            options.append(ModelOption(resolved, path.name, "file", str(path.parent)))
    options.extend(server_options(run_config))
    return options


def server_options(run_config: Any) -> list[ModelOption]:
    """The run config's OpenAI-compatible backends, as chat models."""
    from actors.run_config import OpenAIConfig

    if run_config is None:
        return []
    out = []
    for name, backend in run_config.backends.items():
        if isinstance(backend, OpenAIConfig):
            urls = backend.base_url if isinstance(backend.base_url, str) else ", ".join(backend.base_url)
            out.append(ModelOption(f"{SERVER_PREFIX}{name}", name, "server", f"{backend.model} at {urls}"))
    return out


def describe(option: ModelOption, run_config: Any = None) -> str:
    """Size, quantisation and context length ("98 MB · Q4_1 · 8,192 ctx"), or why they are not known.

    Reads the GGUF's header (blocking). A bundled Gemma not yet assembled is not assembled here.
    """
    if option.kind == "server":
        window = None
        if run_config is not None:
            backend = run_config.backends.get(option.id.removeprefix(SERVER_PREFIX))
            window = getattr(backend, "context_window", None)
        return f"server · {window:,} ctx" if window else "server · ctx set by the server"
    if option.kind == "bundled":
        from actors.backends.bundled import bundled_status

        ok, where = bundled_status(option.id)
        if not ok:
            return where
        path = Path(where)
        if not path.is_file():
            return "assembled on first use"
    else:
        path = Path(option.id)
    try:
        return read_gguf(path).describe()
    except CoachError as err:
        return str(err)


def export_records(store: Any) -> list[dict[str, Any]]:
    """The workspace's exported GGUFs (training runs' records), newest first; [] when the store cannot say.

    A chat must open whatever state the workspace's store is in: this only adds knowledge (which
    chat format an exported file speaks, which exports to offer).
    """
    from actors.training.records import exported_models as recorded

    try:
        return recorded(store)
    except Exception:  # noqa: BLE001 - a locked, old or broken store: the chat goes on without its records
        return []


def load_server_config(config_path: Path | None) -> tuple[Any, str]:
    """The run config whose servers the picker offers, and the problem with it ("" when none)."""
    from actors.run_config import load_run_config

    try:
        return load_run_config(config_path), ""
    except CoachError as err:
        return None, str(err).splitlines()[0]
