"""An honest export: the reply check behind "verified", the Modelfile per chat family, the model card.

Fast: the judgement, the family and the Modelfile are pure functions, and the
export flow runs with its long steps (merge, convert, quantize, generate)
replaced by scripted ones, so what is tested is the wiring: an echo-only model
fails with its reason, and the files name one Ollama model.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from actors.backends import gemma3_format as gemma3
from actors.training import export as export_module
from actors.training import models as training_models
from actors.training.chat_family import (
    CHATML,
    CHATML_TEMPLATE,
    GEMMA3,
    chat_family,
    ollama_model_name,
    render_modelfile,
)
from actors.training.model_card import DataProvenance, Verification, comparison_summary, render_model_card
from actors.training.reply_check import check_reply, copied_share
from actors.usecases.models import ExportRequest, export_model
from coach_tui.cli import main
from coach_tui.commands.train import export_model_cmd
from state import training_records
from state.errors import CoachError
from state.models import TrainingExample, Transcript
from state.store import Store

if export_model_cmd.name not in main.commands:  # the lead registers it on `coach`; tests need it either way
    main.add_command(export_model_cmd)

SYSTEM = "You are a warm, practical self-care coach. Keep replies short, kind and concrete, one topic at a time."
PROMPT = "Hi. I've had a rough week and I can't switch off in the evenings."
GOOD = "That sounds exhausting. What usually happens in the hour before bed?"


def check(reply: str, **kw):
    return check_reply(reply, prompt=PROMPT, system_prompt=SYSTEM, template_tokens=GEMMA3.template_tokens, **kw)


# --- the reply check -----------------------------------------------------------------------------


def test_a_normal_reply_passes():
    result = check(GOOD)
    assert result.ok and result.reason == "" and result.copied_share < 0.5
    assert check("I hear you. A rough week can keep the mind running. What helps you wind down?").ok
    assert check(GOOD, finish_reason="length").ok  # cut at the token limit is still an answer


@pytest.mark.parametrize("reply", ["", "   \n  "])
def test_an_empty_reply_fails(reply):
    result = check(reply)
    assert not result.ok and result.reason == "the reply is empty"


def test_an_echo_of_the_system_prompt_fails():
    result = check(SYSTEM)
    assert not result.ok and "echoes the system prompt" in result.reason
    # cut at the token limit, with different case and punctuation: still mostly a copy
    cut = "you are a warm practical self-care coach keep replies short kind and"
    result = check(cut, finish_reason="length")
    assert not result.ok and "mostly a copy of the system prompt" in result.reason and result.copied_share == 1.0


def test_an_echo_of_the_message_fails():
    assert "echoes the user's message" in check(PROMPT).reason
    assert "mostly a copy of the user's message" in check("I've had a rough week. Hi.").reason
    assert not check("Hi.").ok  # one word copied is a copy
    mixed = "You are a warm, practical self-care coach. I've had a rough week and I can't switch off"
    assert "mostly a copy" in check(mixed).reason


def test_a_reply_that_quotes_a_little_passes():
    reply = "A rough week can leave you wired at night. What is one thing you could put down earlier in the evening?"
    assert copied_share(reply, SYSTEM + "\n" + PROMPT) < 0.5 and check(reply).ok


@pytest.mark.parametrize(
    "reply, token",
    [
        ("I hear you.<end_of_turn>", "<end_of_turn>"),
        ("<start_of_turn>model\nI hear you.", "<start_of_turn>"),
        ("I hear you.<eos>", "<eos>"),
        ("<|im_start|>assistant\nI hear you.", "<|im_start|>"),
        ("[INST] tell me more [/INST]", "[INST]"),
    ],
)
def test_a_reply_with_chat_template_tokens_fails(reply, token):
    result = check(reply)
    assert not result.ok and "chat-template tokens" in result.reason and token in result.reason


def test_a_reply_that_writes_the_next_turn_is_not_in_the_chat_format():
    result = check("That sounds hard.\nuser\nYes it is.")
    assert not result.ok and "not in the chat format" in result.reason
    assert not check("User: I can't sleep.\nAssistant: Try tea.").ok
    assert check("User accounts aside, what keeps you up?").ok  # a role word inside a sentence is fine


def test_a_reply_without_words_or_cut_for_another_reason_fails():
    assert check("… !!").reason == "the reply has no words"
    assert "ended with 'error'" in check(GOOD, finish_reason="error").reason


# --- the chat family and the Modelfile -----------------------------------------------------------

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_the_family_comes_from_the_gguf_metadata():
    gemma_template = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}..."
    assert chat_family({"general.architecture": "gemma3", "tokenizer.chat_template": gemma_template}) is GEMMA3
    assert chat_family({"general.architecture": "gemma3"}) is GEMMA3  # a Gemma base model without a template
    assert chat_family({"general.architecture": "llama", "tokenizer.chat_template": SMOLLM2_TEMPLATE}) is CHATML
    llama3 = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>..."
    with pytest.raises(CoachError, match="architecture 'llama'.*not a chat format coach can write"):
        chat_family({"general.architecture": "llama", "tokenizer.chat_template": llama3})
    with pytest.raises(CoachError, match="'phi3', no chat template"):
        chat_family({"general.architecture": "phi3"})


def test_the_bundled_smollm2_gguf_reads_as_chatml():
    from actors.backends.bundled import SMOLLM2, bundled_path

    try:
        path = bundled_path(SMOLLM2)
    except CoachError as err:  # pragma: no cover - the package is a dependency
        pytest.skip(str(err))
    metadata = export_module.gguf_metadata(path)
    assert metadata["general.architecture"] == "llama" and chat_family(metadata) is CHATML
    assert export_module.context_length({"recipe": {"max_length": 65536}}, metadata) == 8192  # the model's window


def test_the_gemma_modelfile_has_gemmas_template_stops_and_the_trained_context():
    text = render_modelfile(gguf_name="x.gguf", system_prompt="Be kind.", family=GEMMA3, name="therapy", num_ctx=2048)
    assert f'TEMPLATE """{gemma3.OLLAMA_TEMPLATE}"""' in text
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<end_of_turn>"',
        'PARAMETER stop "<eos>"',
    ]
    assert "PARAMETER num_ctx 2048" in text and "8192" not in text
    assert "# Use: ollama create therapy -f Modelfile   then   ollama run therapy" in text
    assert "FROM ./x.gguf" in text and 'SYSTEM """Be kind."""' in text


def test_the_chatml_modelfile_has_chatml_template_and_stops_and_nothing_of_gemma():
    text = render_modelfile(
        gguf_name="s.gguf", system_prompt='Say """hi"""', family=CHATML, name="customer-support", num_ctx=4096
    )
    assert f'TEMPLATE """{CHATML_TEMPLATE}"""' in text
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|im_start|>"',
        'PARAMETER stop "<|endoftext|>"',
    ]
    assert "<start_of_turn>" not in text and "<end_of_turn>" not in text and "top_k 64" not in text
    assert "PARAMETER num_ctx 4096" in text and "ollama create customer-support -f Modelfile" in text
    assert 'SYSTEM """Say "\\""hi"\\""' in text  # a triple quote cannot end the block early


def test_the_chatml_template_renders_the_turns_of_smollm2s_own_template():
    """The Go template's literal pieces are the Jinja template's: each turn `<|im_start|>ROLE\\n…<|im_end|>\\n`,
    then `<|im_start|>assistant\\n` for the reply (Ollama itself is not installed here to render it)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    rendered = Jinja2ChatFormatter(SMOLLM2_TEMPLATE, eos_token="", bos_token="")(messages=messages).prompt
    assert rendered == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ if $last }}<|im_start|>assistant\n" in (
        CHATML_TEMPLATE
    )


def test_ollama_names_are_cleaned():
    assert ollama_model_name("customer-support") == "customer-support"
    assert ollama_model_name("My Pack!") == "my-pack"
    assert ollama_model_name("***") == "coach"


# --- the model card ------------------------------------------------------------------------------

COMPARISON = {
    "base": {"model": "gemma3-270m", "mean": 0.41, "pass_rate": 0.2},
    "candidate": {"model": "/x/therapy.gguf", "mean": 0.52, "pass_rate": 0.4},
    "paired": {"n_pairs": 5, "mean_difference": 0.11, "improvement_pct": 26.8, "t_pvalue": 0.031},
    "verdict": {"passed": True, "safety_gate": "passed"},
}


def card(**kw) -> str:
    args = {
        "name": "therapy",
        "ollama_name": "therapy",
        "run_id": "train-1",
        "exported_at": "2026-01-01 00:00 UTC",
        "base_model": {"reference": "bundled:gemma3-270m", "source": "bundled"},
        "family": "gemma3",
        "architecture": "gemma3",
        "files": [("GGUF Q4_K_M", "therapy.Q4_K_M.gguf")],
        "num_ctx": 2048,
        "preset": "tiny",
        "recipe": {
            "max_length": 2048,
            "max_steps": 8,
            "device": "cpu",
            "dtype": "float32",
            "optim": "adamw_torch",
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
            "training": {"learning_rate": 0.001, "lr_scheduler_type": "cosine", "seed": 42},
        },
        "metrics": {"global_step": 8, "max_steps": 8, "first_loss": 3.2, "last_loss": 1.1},
        "data": DataProvenance(
            "/ws/training_data.jsonl",
            "ab" * 32,
            "unchanged since training",
            {"examples": 12, "kept": 12, "total_tokens": 9000, "trained_tokens": 2000, "longest": 1500},
            transcripts=3,
            length_mix="Short (0-5K)  12  100%",
        ),
        "verification": Verification(done=True, ok=True, reply="I hear you.", prompt=PROMPT),
        "comparison": None,
    }
    return render_model_card(**{**args, **kw})


def test_the_model_card_names_base_data_settings_and_says_when_there_is_no_comparison():
    text = card()
    assert "# therapy: a fine-tune of bundled:gemma3-270m" in text
    assert "ollama create therapy -f Modelfile && ollama run therapy" in text
    assert "- transcripts: 3" in text and "- training examples: 12 trained" in text
    assert "/ws/training_data.jsonl` (unchanged since training" in text and "Short (0-5K)" in text
    assert "- preset: `tiny`" in text and "- steps: 8 of 8" in text
    assert "- LoRA: r 8, alpha 16, dropout 0.0, target modules all-linear" in text
    assert "- learning rate: 0.001 (cosine schedule" in text and "- loss: 3.2000 → 1.1000" in text
    assert "No comparison report in the workspace yet" in text
    assert "answered one message under the system prompt: passed" in text


def test_the_model_card_summarizes_the_latest_comparison_and_a_failed_check():
    text = card(
        comparison=comparison_summary(COMPARISON),
        comparison_source="/ws/reports/eval-1/comparison_report.json",
        verification=Verification(done=True, ok=False, reason="the reply echoes the system prompt", reply=SYSTEM),
        data=DataProvenance("/ws/d.jsonl", None, "no longer on disk"),
    )
    assert "eval-1/comparison_report.json" in text and "- verdict: **PASS**" in text
    assert "mean score: base 0.410, candidate 0.520" in text and "5 pair(s)" in text and "p = 0.0310" in text
    assert "FAILED: the reply echoes the system prompt" in text
    assert "transcripts: unknown" in text and "training examples: unknown" in text and "length mix: unknown" in text
    assert "Not verified" in card(verification=Verification(done=False))
    assert "not this export" not in "\n".join(comparison_summary(COMPARISON, "/x/therapy.gguf"))


# --- the export flow with a scripted model -------------------------------------------------------


@pytest.fixture
def scripted_export(tmp_path, monkeypatch):
    """A workspace with a finished training run, and an export whose long steps only write placeholder files."""
    workspace = tmp_path / "ws"
    store = Store.for_workspace(workspace)
    run_dir, base = workspace / "train" / "train-1", tmp_path / "base"
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    data = tmp_path / "training_data.jsonl"
    data.write_text('{"messages": []}\n' * 3)
    with store.session() as s:  # what `coach slice` recorded: 3 examples from 2 transcripts
        s.add(Transcript(id="t1"))
        s.add(Transcript(id="t2"))
        s.flush()
        for tid, end, count in (("t1", 3, 900), ("t1", 5, 1400), ("t2", 3, 6000)):
            s.add(TrainingExample(transcript_id=tid, end_exchange=end, tokenizer="gemma3", token_count=count))
    from actors.training.data import file_sha256

    training_records.create_run(
        store,
        "train-1",
        {
            "data": {"path": str(data), "sha256": file_sha256(data), "report": {"examples": 3, "kept": 3}},
            "preset": "tiny",
            "recipe": {"preset": "tiny", "max_length": 2048, "lora": {"r": 8}, "training": {"learning_rate": 1e-3}},
            "base_model": {"reference": "bundled:gemma3-270m", "path": str(base), "source": "bundled"},
            "paths": {"run_dir": str(run_dir), "adapter": str(run_dir / "adapter")},
        },
    )
    training_records.update_run(store, "train-1", status="finished", metrics={"global_step": 8, "max_steps": 8})

    def touch(path: Path) -> Path:
        path.write_text("placeholder")
        return path

    monkeypatch.setattr(training_models, "quiet_libraries", lambda: None)
    monkeypatch.setattr(export_module, "converter_command", lambda: ["convert-hf-to-gguf"])
    monkeypatch.setattr(export_module, "merge_adapter", lambda b, a, out, **kw: out.mkdir(exist_ok=True) or out)
    monkeypatch.setattr(export_module, "convert_to_gguf", lambda merged, outfile, **kw: touch(outfile))
    monkeypatch.setattr(export_module, "quantize_gguf", lambda src, dst, ftype, **kw: touch(dst))
    metadata = {"general.architecture": "gemma3", "gemma3.context_length": "32768", "tokenizer.chat_template": ""}
    monkeypatch.setattr(export_module, "gguf_metadata", lambda path: metadata)
    replies: list[str | None] = []  # None: repeat the system prompt the export asked under

    def generate_reply(gguf, system_prompt, prompt_text, **kw):
        reply = replies.pop(0)
        return (system_prompt if reply is None else reply), "length"

    monkeypatch.setattr(export_module, "generate_reply", generate_reply)
    return SimpleNamespace(workspace=workspace, store=store, replies=replies, run_dir=run_dir)


def test_an_echo_only_model_fails_the_export_with_the_reason(scripted_export):
    env = scripted_export
    env.replies.append(SYSTEM)
    pack = SimpleNamespace(name="therapy", system_prompt=SYSTEM)
    with pytest.raises(CoachError, match="failed verification: the reply echoes the system prompt") as err:
        export_model(env.store, pack, ExportRequest(run="train-1"), workspace=env.workspace)
    assert "--no-verify" in str(err.value)
    export = training_records.training_runs(env.store)[0].config["export"]  # still on record, as failed
    assert export["verified"] is False and export["verify_problem"] == "the reply echoes the system prompt"
    readme = (env.run_dir / "export" / "README.md").read_text()
    assert "FAILED: the reply echoes the system prompt" in readme
    assert "- transcripts: 2" in readme and "Medium (5-15K)" in readme  # the slice records match the file

    # the command line, its model repeating the default pack's system prompt: where the files are, then why
    env.replies.append(None)
    result = CliRunner().invoke(main, ["-w", str(env.workspace), "export-model", "train-1"])
    assert result.exit_code == 1 and "verified:" not in result.output
    assert "run it in Ollama:  ollama create therapy" in result.output
    assert "failed verification: the reply" in result.output and "system prompt" in result.output


def test_a_model_that_answers_is_verified_and_the_cli_names_one_ollama_model(scripted_export):
    env = scripted_export
    env.replies.append(GOOD)
    (env.workspace / "reports" / "eval-1").mkdir(parents=True)
    (env.workspace / "reports" / "eval-1" / "comparison_report.json").write_text(json.dumps(COMPARISON))
    result = CliRunner().invoke(main, ["-w", str(env.workspace), "export-model", "train-1"])
    assert result.exit_code == 0, result.output
    assert f"verified: llama.cpp answered {GOOD!r}" in result.output
    modelfile = env.run_dir / "export" / "Modelfile"
    assert f"run it in Ollama:  ollama create therapy -f {modelfile}" in result.output
    assert "ollama create coach" not in result.output
    text = modelfile.read_text()
    assert "ollama create therapy -f Modelfile" in text and "PARAMETER num_ctx 2048" in text
    readme = (env.run_dir / "export" / "README.md").read_text()
    assert "ollama create therapy" in readme and "- verdict: **PASS**" in readme and ": passed." in readme
    assert "its candidate is not this export" in readme  # the report compared /x/therapy.gguf
    export = training_records.training_runs(env.store)[0].config["export"]
    assert export["verified"] and export["ollama_name"] == "therapy" and export["num_ctx"] == 2048
    assert export["model_card"] == str(env.run_dir / "export" / "README.md")
