"""Any GGUF chats in its own format: the template and stop tokens come from the file's metadata, else
from the training run that exported it or its Modelfile, and a file with none of them is refused with
a message that names it. The fast tests use header-only GGUFs; the slow ones the bundled models."""

from __future__ import annotations

import mmap
import shutil
from pathlib import Path

import anyio
import pytest

from actors.backends import gemma3_format as gemma3
from actors.chat.chat_format import describe_model, format_for_file, resolve_chat_format
from actors.chat.engine import ChatEngine, StopCutter, chat_backend, tailored
from actors.chat.gguf_info import read_gguf, write_gguf_header
from actors.run_config import OpenAIConfig, RunConfig
from actors.training.chat_family import CHATML, GEMMA3, render_modelfile
from state.chat import ChatMessage
from state.errors import CoachError
from tests.tui_support import StreamingBackend

CHATML_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "hello"]


def gguf(tmp_path: Path, name: str = "model.gguf", **metadata) -> Path:
    """A header-only GGUF: what the chat reads before it loads a model."""
    base = {"general.architecture": "llama", "llama.context_length": 8192, "general.file_type": 15}
    return write_gguf_header(tmp_path / name, {**base, **metadata}, TOKENS)


def test_the_header_says_size_quantisation_context_and_stop_tokens(tmp_path):
    info = read_gguf(gguf(tmp_path, **{"tokenizer.chat_template": CHATML_TEMPLATE, "tokenizer.ggml.eos_token_id": 0}))
    assert info.quantization == "Q4_K_M" and info.context_length == 8192 and info.architecture == "llama"
    assert info.eos_token == "<|endoftext|>" and info.stop_tokens == ("<|endoftext|>", "<|im_end|>")
    assert info.describe().endswith("Q4_K_M · 8,192 ctx")


def test_a_file_with_its_own_template_is_spoken_to_in_it(tmp_path):
    path = gguf(tmp_path, **{"tokenizer.chat_template": CHATML_TEMPLATE, "tokenizer.ggml.eos_token_id": 2})
    found = resolve_chat_format(str(path))
    assert found.chat_format == "gguf" and "tokenizer.chat_template" in found.source
    assert found.stops == ("<|im_end|>",)


def test_a_file_without_a_template_is_refused_naming_it(tmp_path):
    path = gguf(tmp_path, "mystery.Q4_K_M.gguf")
    with pytest.raises(CoachError) as caught:
        format_for_file(path)
    message = str(caught.value)
    assert "mystery.Q4_K_M.gguf" in message and "no chat template" in message and "Modelfile" in message


def test_the_modelfile_beside_an_exported_file_names_its_format(tmp_path):
    path = gguf(tmp_path, "coach.Q4_K_M.gguf")
    text = render_modelfile(gguf_name=path.name, system_prompt="S", family=CHATML, name="coach", num_ctx=2048)
    (tmp_path / "Modelfile").write_text(text, encoding="utf-8")
    found = format_for_file(path)
    assert found.chat_format == "chatml" and "Modelfile" in found.source
    assert found.stops == CHATML.stops
    # A Modelfile for another file says nothing about this one.
    other = gguf(tmp_path, "other.gguf")
    with pytest.raises(CoachError):
        format_for_file(other)


def test_the_training_run_that_exported_a_file_names_its_format(tmp_path):
    from actors.chat.models import export_records
    from state import training_records
    from state.store import Store

    path = gguf(tmp_path, "run.Q4_K_M.gguf", **{"general.architecture": "gemma3"})
    store = Store.for_workspace(tmp_path / "ws")
    training_records.create_run(store, "train-1", {"export": {"gguf": str(path), "chat_family": "gemma3"}})
    exports = export_records(store)
    store.close()
    found = format_for_file(path, exports=exports)
    assert found.chat_format == "gemma3" and "train-1" in found.source and found.stops == GEMMA3.stops


def test_a_gemma_file_without_a_template_gets_gemma_turns(tmp_path):
    path = gguf(tmp_path, **{"general.architecture": "gemma3"})
    found = format_for_file(path)
    assert found.chat_format == "gemma3" and found.stops == gemma3.STOP


def test_a_file_that_is_not_a_gguf_is_named(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(CoachError, match="notes.gguf"):
        format_for_file(path)
    path.write_text("hello")
    with pytest.raises(CoachError, match="not a GGUF"):
        format_for_file(path)


def test_stop_markers_cut_a_reply_and_are_never_shown_in_part():
    cut = StopCutter(("<|im_end|>",))
    assert cut.feed("Take a short walk.<|im") == "Take a short walk."
    assert cut.feed("_end|>\n<|im_start|>user I believe") == "" and cut.stopped
    assert cut.feed("more") == "" and cut.flush() == ""
    loose = StopCutter(("<|im_end|>",))
    assert loose.feed("a <") == "a " and loose.feed("b") == "<b" and loose.flush() == ""


async def test_the_engine_ends_a_reply_at_a_stop_marker_written_as_text():
    backend = StreamingBackend("Rest a little. <|im_end|> <|im_start|>user I believe you")
    engine = ChatEngine(backend, "system", stops=("<|im_end|>", "<|im_start|>"))
    pieces = [p async for p in engine.reply([ChatMessage("user", "hi")])]
    assert "".join(pieces) == "Rest a little. "


def test_server_models_come_from_the_run_config(tmp_path):
    config = RunConfig(backends={"ollama": OpenAIConfig(model="llama3.2", base_url="http://127.0.0.1:11434/v1")})
    backend = chat_backend("server:ollama", run_config=config)
    assert backend.kind == "openai" and backend.model == "llama3.2"
    with pytest.raises(CoachError, match="server models there: ollama"):
        chat_backend("server:vllm", run_config=config)
    assert describe_model("server:ollama") == "ollama (server)"


def test_a_gguf_backend_takes_the_chat_format_and_window_decided_for_it(tmp_path):
    path = gguf(tmp_path)
    backend = chat_backend(str(path))
    changed = tailored(backend, chat_format="chatml", n_ctx=2048)
    assert changed is not backend and changed.config.chat_format == "chatml" and changed.config.n_ctx == 2048
    assert tailored(changed, chat_format="chatml", n_ctx=2048) is changed
    scripted = StreamingBackend()
    assert tailored(scripted, chat_format="chatml", n_ctx=2048) is scripted


# --- the bundled models, for real ---------------------------------------------------------------


def without_template(source: Path, target: Path) -> Path:
    """A copy of a real GGUF whose template key is renamed (same length): the file carries no template."""
    shutil.copyfile(source, target)
    with target.open("r+b") as fh, mmap.mmap(fh.fileno(), 0) as data:
        at = data.find(b"tokenizer.chat_template")
        assert at > 0
        data[at : at + 23] = b"tokenizer.chat_templatX"
    return target


@pytest.mark.slow
def test_bundled_models_are_read_from_their_metadata():
    from actors.backends.bundled import GEMMA3 as GEMMA_NAME
    from actors.backends.bundled import SMOLLM2, bundled_path

    smol = read_gguf(bundled_path(SMOLLM2))
    assert smol.chat_template.startswith("{% for message in messages %}") and smol.eos_token == "<|im_end|>"
    assert smol.quantization == "Q4_1" and smol.context_length == 8192
    found = format_for_file(bundled_path(SMOLLM2))
    assert found.chat_format == "gguf" and found.stops == ("<|im_end|>",)
    gemma = read_gguf(bundled_path(GEMMA_NAME))
    assert not gemma.chat_template and gemma.architecture == "gemma3" and gemma.eos_token == "<eos>"
    assert resolve_chat_format(GEMMA_NAME).chat_format == "gemma3"
    # A Gemma template ends turns with <end_of_turn>, not the file's <eos>: both stop a reply.
    from actors.backends.chat_templates import turn_end_ids

    llm = tailored(chat_backend(GEMMA_NAME), n_ctx=512).pool().primary
    assert turn_end_ids(llm, "<start_of_turn>user\n{{ m }}<end_of_turn>\n") == [106] != [llm.token_eos()]


@pytest.mark.slow
def test_a_real_gguf_chats_in_the_template_and_stops_of_its_metadata_or_its_modelfile(tmp_path):
    """SmolLM2 by path renders its own ChatML template and stops at <|im_end|>; the same weights with
    no template in the file are refused, then spoken to in ChatML once their Modelfile says so."""
    from actors.backends.bundled import SMOLLM2, bundled_path
    from actors.backends.types import Message

    source = bundled_path(SMOLLM2)
    own = tailored(chat_backend(str(source)), chat_format=format_for_file(source).chat_format, n_ctx=512)
    pool = own.pool()
    rendered = pool.formatter(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert rendered.prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert pool.formatter.stop_token_ids == {2}  # <|im_end|>, the file's EOS and its template's turn end

    bare = without_template(source, tmp_path / "smol-bare.gguf")
    with pytest.raises(CoachError, match="smol-bare.gguf has no chat template"):
        format_for_file(bare)
    modelfile = render_modelfile(gguf_name=bare.name, system_prompt="S", family=CHATML, name="c", num_ctx=512)
    (tmp_path / "Modelfile").write_text(modelfile, encoding="utf-8")
    found = format_for_file(bare)
    assert found.chat_format == "chatml"
    backend = tailored(chat_backend(str(bare)), chat_format=found.chat_format, n_ctx=512)
    bare_pool = backend.pool()
    assert bare_pool.formatter(messages=[{"role": "user", "content": "U"}]).prompt == (
        "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    assert 2 in bare_pool.formatter.stop_token_ids
    engine = ChatEngine(backend, "You are brief.", max_tokens=12, temperature=0.0, stops=found.stops)

    async def ask() -> str:
        return "".join([p async for p in engine.reply([ChatMessage("user", "Say hello.")])])

    reply = anyio.run(ask)
    assert reply.strip() and not any(marker in reply for marker in CHATML.template_tokens)
    assert backend.count_tokens([Message(role="user", content="U")]) > 0
