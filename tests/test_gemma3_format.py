"""Gemma 3's chat format has one source, and every user of it renders what the trainer sees.

The reference is TRL's ``gemma3.jinja`` (the template `actors.training.data`
installs on the tokenizer before training), rendered by llama-cpp-python's
Jinja formatter with Hugging Face's settings: text only, no model loaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from actors.backends import gemma3_format as gemma3
from actors.backends.chat_templates import GemmaTurnFormatter
from actors.dataset.tokens import render_gemma3
from actors.training.chat_family import GEMMA3
from actors.training.export import write_modelfile

SYSTEM = "You are a warm, practical self-care coach.\nKeep replies segmented by topic."
PAIRS = [
    ("  Work was rough.\n\nAlso my sister called.  ", "\n**Work:** That sounds heavy. 🌱\n"),
    ("She said 'model' and <start_of_turn> nonsense", "That's okay.<end_of_turn> Still here?"),
    ("Привет. 这周很难。", "Ending with a space and newline \n"),
]


def conv(pairs, system: str | None = SYSTEM, *, ask: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for user, assistant in pairs:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages + ([{"role": "user", "content": ask}] if ask else [])


CONVERSATIONS = {
    "system": conv(PAIRS),
    "no-system": conv(PAIRS, None),
    "system-untrimmed": conv(PAIRS[:1], "  Be brief.  "),
    "empty-system": conv(PAIRS[:1], ""),
    "asking": conv(PAIRS[:2], ask=" And now? "),
    "first-question": conv([], ask="Hi"),
}


def trl_gemma3(*, add_generation_prompt: bool) -> Jinja2ChatFormatter:
    spec = importlib.util.find_spec("trl")  # the file only: importing TRL takes seconds
    assert spec and spec.submodule_search_locations, "TRL (the train extra) is part of the dev install"
    template = Path(spec.submodule_search_locations[0], "chat_templates", "gemma3.jinja").read_text(encoding="utf-8")
    return Jinja2ChatFormatter(
        template=template, eos_token=gemma3.EOS, bos_token=gemma3.BOS, add_generation_prompt=add_generation_prompt
    )


@pytest.mark.parametrize("ask", [False, True], ids=["", "generation-prompt"])
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_token_counting_renders_the_training_template_exactly(name, ask):
    messages = CONVERSATIONS[name]
    expected = trl_gemma3(add_generation_prompt=ask)(messages=messages).prompt
    assert render_gemma3(messages, add_generation_prompt=ask) == expected


@pytest.mark.parametrize("name", ["system", "no-system", "asking", "first-question"])
def test_a_gguf_without_template_is_prompted_as_the_model_was_trained(name):
    """The embedded backend's prompt is the training text plus the generation prompt (BOS: the tokenizer's)."""
    messages = CONVERSATIONS[name]
    rendered = GemmaTurnFormatter()(messages=messages)
    assert gemma3.BOS + rendered.prompt == trl_gemma3(add_generation_prompt=True)(messages=messages).prompt
    assert rendered.stop == [gemma3.END] and rendered.added_special is False


@pytest.mark.parametrize(
    "messages, prompt",
    [
        (
            [{"role": "system", "content": "Be brief. "}],
            "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [
                {"role": "system", "content": "A"},
                {"role": "system", "content": " B "},
                {"role": "user", "content": "hi"},
            ],
            "<start_of_turn>user\nA\n\nB\n\nhi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            [
                {"role": "system", "content": "S"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "hi"},
            ],
            "<start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
        ),
    ],
    ids=["system-only", "two-systems", "model-speaks-first"],
)
def test_the_backend_renders_what_the_training_template_would_refuse(messages, prompt):
    """A backend is asked what callers send: the system prompt is never dropped, and always comes first."""
    assert GemmaTurnFormatter()(messages=messages).prompt == prompt


def test_the_ollama_modelfile_carries_the_same_format_and_stops(tmp_path):
    text = write_modelfile(
        tmp_path / "Modelfile", tmp_path / "coach.gguf", "Be kind.", name="coach-test", family=GEMMA3, num_ctx=2048
    ).read_text()
    assert f'TEMPLATE """{gemma3.OLLAMA_TEMPLATE}"""' in text
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<end_of_turn>"',
        'PARAMETER stop "<eos>"',
    ]
    assert 'SYSTEM """Be kind."""' in text and "PARAMETER num_ctx 2048" in text
