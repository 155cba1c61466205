"""Which chat format an exported model speaks, read from its GGUF metadata, and the Ollama Modelfile for it.

The exported GGUF carries what the model was trained with: `general.architecture`
and, when the tokenizer had one, `tokenizer.chat_template` (the Jinja template).
`chat_family` recognises the formats coach can write an Ollama template for:

* ``gemma3``: Gemma's turns (``<start_of_turn>user`` … ``<end_of_turn>``, the
  system prompt folded into the first user turn), as in `gemma3_format`. Chosen
  when the template uses ``<start_of_turn>``, or when a Gemma architecture
  carries no template at all (the bundled Gemma 3 270M base model).
* ``chatml``: ``<|im_start|>role\\n…<|im_end|>`` turns with a real system role:
  SmolLM2, Qwen and the other ChatML models, whatever their architecture
  (SmolLM2's is ``llama``).

Anything else raises: a Modelfile with the wrong template gives a model that
rambles past its turn or answers garbage in Ollama, which is worse than no
Modelfile. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from actors.backends import gemma3_format as gemma3
from state.errors import CoachError


@dataclass(frozen=True)
class ChatFamily:
    name: str
    ollama_template: str
    """The chat format in Ollama's Go template language."""
    stops: tuple[str, ...]
    """Ollama's `PARAMETER stop` lines: what ends a reply."""
    template_tokens: tuple[str, ...]
    """The format's own markers: text a reply must never contain."""
    run_config_chat_format: str
    """The `chat_format` of a llama_cpp backend in a run config."""
    sampling: tuple[tuple[str, str], ...] = ()
    """Ollama `PARAMETER` lines the model's makers recommend for sampling (none: Ollama's defaults)."""


CHATML_TEMPLATE = """\
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq $m.Role "assistant" }}<|im_start|>assistant
{{ $m.Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else }}<|im_start|>{{ $m.Role }}
{{ $m.Content }}<|im_end|>
{{ if $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- end }}"""
"""ChatML in Ollama's template language: every message (system included) as `<|im_start|>ROLE\\n…<|im_end|>\\n`,
then `<|im_start|>assistant\\n` for the reply, as the Hugging Face templates of SmolLM2 and Qwen render it."""

GEMMA3 = ChatFamily(
    name="gemma3",
    ollama_template=gemma3.OLLAMA_TEMPLATE,
    stops=gemma3.STOP,
    template_tokens=(gemma3.START, gemma3.END, gemma3.BOS, gemma3.EOS),
    run_config_chat_format="gemma3",
    sampling=(("temperature", "1.0"), ("top_k", "64"), ("top_p", "0.95")),  # Google's settings for Gemma 3
)
CHATML = ChatFamily(
    name="chatml",
    ollama_template=CHATML_TEMPLATE,
    stops=("<|im_end|>", "<|im_start|>", "<|endoftext|>"),
    template_tokens=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    run_config_chat_format="gguf",
)
FAMILIES = (GEMMA3, CHATML)

OTHER_TEMPLATE_TOKENS = (
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<s>",
    "</s>",
)
"""Markers of the common chat formats: a reply holding any of them leaked its template, whichever family it is."""


def chat_family(metadata: Mapping[str, object], *, label: str = "the model") -> ChatFamily:
    """The chat format of a GGUF, from its `general.architecture` and `tokenizer.chat_template`."""
    architecture = str(metadata.get("general.architecture") or "")
    template = str(metadata.get("tokenizer.chat_template") or "")
    if gemma3.START in template:
        return GEMMA3
    if "<|im_start|>" in template:
        return CHATML
    if not template and architecture.startswith("gemma"):
        return GEMMA3  # Gemma checkpoints without a template (a base model) are prompted in Gemma's turns
    what = f"a chat template starting {template[:60]!r}" if template else "no chat template"
    raise CoachError(
        f"{label} (architecture {architecture or 'unknown'!r}, {what}) is not a chat format coach can write an "
        f"Ollama Modelfile for (known: {', '.join(f.name for f in FAMILIES)}); "
        "export a Gemma or ChatML model (such as SmolLM2), or write its Modelfile by hand"
    )


def ollama_model_name(name: str) -> str:
    """`name` as an Ollama model name: lower case, letters, digits, '.', '_' and '-'."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return cleaned or "coach"


def render_modelfile(
    *, gguf_name: str, system_prompt: str, family: ChatFamily, name: str, num_ctx: int, file_name: str = "Modelfile"
) -> str:
    """The Ollama Modelfile's text: FROM the GGUF beside it, the family's template and stops, the context length."""
    if num_ctx < 1:
        raise ValueError(f"num_ctx must be positive, got {num_ctx}")
    system = system_prompt.replace('"""', '"\\""')
    return (
        "# Ollama Modelfile written by coach export-model.\n"
        f"# Use: ollama create {name} -f {file_name}   then   ollama run {name}\n"
        f"# Chat format: {family.name}; context: {num_ctx} tokens (the length the model was trained with).\n"
        f"FROM ./{gguf_name}\n\n"
        f'TEMPLATE """{family.ollama_template}"""\n\n'
        f'SYSTEM """{system}"""\n\n'
        + "".join(f'PARAMETER stop "{stop}"\n' for stop in family.stops)
        + f"PARAMETER num_ctx {num_ctx}\n"
        + "".join(f"PARAMETER {key} {value}\n" for key, value in family.sampling)
    )
