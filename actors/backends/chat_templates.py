"""Turning messages into the exact prompt text a GGUF model was trained on.

Token counts and prefix reuse are only exact if the prompt is rendered the way
the model expects, so the embedded backend renders it here and tokenizes it
itself rather than trusting a guess:

* ``gguf``: the Jinja chat template stored in the file
  (``tokenizer.chat_template``), rendered with llama-cpp-python's own
  ``Jinja2ChatFormatter``: the same code path ``Llama.create_chat_completion``
  uses, so both produce identical tokens.
* ``gemma3``: Gemma 3's turn format (`gemma3_format`) for files that carry no
  template (the bundled Gemma 3 270M is a base model).
* ``chatml``: ChatML turns for a file that carries no template but is known
  (from the training run that exported it, or its Modelfile) to speak ChatML.

Stop tokens: a reply ends at the file's EOS token *and* at the end-of-turn
marker its template writes (``<|im_end|>``, ``<end_of_turn>``, ``<|eot_id|>``…)
when that marker is one token: an exported model whose EOS is another token
would otherwise write past its turn into the next one ("…user I believe…").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from llama_cpp import llama_chat_format

from state.errors import CoachError

from . import gemma3_format as gemma3
from .types import Message

ChatFormat = Literal["auto", "gguf", "gemma3", "chatml"]

TURN_END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")
"""End-of-turn markers of the common chat formats; one in a template is a stop token too."""

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML as SmolLM2's and Qwen's templates render it, for a ChatML model whose file carries no template."""


class GemmaTurnFormatter:
    """Gemma 3's chat turns, for Gemma GGUFs without a template. BOS comes from the tokenizer.

    Lenient where the trainer's template is strict, since a backend renders
    whatever it is asked: several system messages are joined, and a system
    prompt with no user turn to fold into becomes a user turn of its own.
    """

    def __call__(self, *, messages: Sequence[dict[str, Any]], **_: Any) -> llama_chat_format.ChatFormatterResponse:
        system = "\n\n".join(m["content"].strip() for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        if system and (not turns or turns[0]["role"] != "user"):
            turns, system = [{"role": "user", "content": system}, *turns], ""
        prompt = "".join(gemma3.render_turns(turns, system or None)) + gemma3.GENERATION_PROMPT
        return llama_chat_format.ChatFormatterResponse(prompt=prompt, stop=[gemma3.END], added_special=False)


def formatter_for(llm: Any, chat_format: ChatFormat, model_label: str) -> Any:
    """The chat formatter for a loaded ``llama_cpp.Llama``, chosen by ``chat_format``."""
    template = llm.metadata.get("tokenizer.chat_template")
    architecture = llm.metadata.get("general.architecture", "")
    if chat_format == "gemma3" or (chat_format == "auto" and not template and architecture.startswith("gemma")):
        return GemmaTurnFormatter()
    if chat_format == "chatml":
        template = CHATML_TEMPLATE
    if not template:
        raise CoachError(
            f"{model_label} has no chat template in its GGUF metadata; set chat_format: gemma3 for a Gemma 3 model"
        )
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    model = llm._model  # the token texts are only exposed on the internal model wrapper
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id, *turn_end_ids(llm, template)],
    )


def turn_end_ids(llm: Any, template: str) -> list[int]:
    """The token ids of the end-of-turn markers ``template`` writes, each when it is a single token."""
    ids = []
    for marker in TURN_END_MARKERS:
        if marker in template:
            tokens = llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) == 1:
                ids.append(tokens[0])
    return ids


def as_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]
