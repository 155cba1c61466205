"""Gemma 3's chat format: the one place that spells it.

Three parts of coach must produce exactly the text a Gemma 3 model was trained
on, and a second copy of the format drifts silently, by one newline or one
trimmed space, into wrong token counts or a model that rambles past its turn:

* token counting for slicing (`actors.dataset.tokens`), which must equal what the
  trainer's tokenizer sees with the published template (TRL's
  ``gemma3_chat_template``, which `actors.training.data` installs);
* prompting a Gemma GGUF that carries no template of its own, such as the
  bundled Gemma 3 270M base model (`actors.backends.chat_templates`);
* the Ollama Modelfile written on export (`actors.training.export`), which
  needs the same format in Ollama's template language.

The format, as in google/gemma-3-*-it's ``tokenizer_config.json``: Gemma has
no system role, so the system prompt plus a blank line is folded into the
first turn; every turn is ``<start_of_turn>{user|model}\\n{content}<end_of_turn>\\n``
with its content trimmed (the folded system prompt is not trimmed); a reply
is asked for with ``<start_of_turn>model\\n``. Pure text, no tokenizer: BOS is
written only by callers that tokenize the text themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BOS = "<bos>"
EOS = "<eos>"
START = "<start_of_turn>"
END = "<end_of_turn>"
GENERATION_PROMPT = f"{START}model\n"
STOP = (END, EOS)
"""What ends a reply: the end of the model's turn, or the end of the text."""


def render_turn(role: str, content: str, prefix: str = "") -> str:
    """One turn; `prefix` is the folded system prompt, which the template does not trim."""
    return f"{START}{'model' if role == 'assistant' else role}\n{prefix}{content.strip()}{END}\n"


def render_turns(turns: Sequence[Mapping[str, str]], system: str | None = None) -> list[str]:
    """One rendered segment per user or assistant turn, `system` folded into the first.

    No BOS and no checks on the order of roles: `actors.dataset.tokens` checks them
    for the trainer's strict template, and a backend accepts what it is given.
    """
    prefix = "" if system is None else f"{system}\n\n"
    return [render_turn(m["role"], m["content"], prefix if i == 0 else "") for i, m in enumerate(turns)]


OLLAMA_TEMPLATE = """\
{{- $system := "" }}{{- $first := true }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq $m.Role "system" }}{{ $system = $m.Content }}
{{- else if eq $m.Role "user" }}<start_of_turn>user
{{ if and $first $system }}{{ $system }}

{{ end }}{{ $m.Content }}<end_of_turn>
{{ $first = false }}{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq $m.Role "assistant" }}<start_of_turn>model
{{ $m.Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""
"""The same format in Ollama's Go template language, for the Modelfile written on export.

Ollama renders the conversation itself, so the format is given to it as a
template rather than as text; Ollama's tokenizer adds BOS.
"""
