"""Prompt templates: which ones a pack must have and what they may refer to.

Templates are Markdown files in the pack's prompts folder, filled with
`string.Template`'s syntax (`$name` or `${name}`; `$$` for a dollar sign, and a
`$` that starts no name, as in `$5`, is kept as it is), so JSON braces in a
prompt need no escaping. Each template may use only the variables the code supplies for it;
`coach config check` reports any other name, so a typo fails at check time
rather than as a literal `$tyop` in a thousand generated conversations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template


@dataclass(frozen=True)
class PromptSpec:
    name: str
    purpose: str
    variables: frozenset[str]


PROMPT_SPECS: tuple[PromptSpec, ...] = (
    PromptSpec(
        "persona",
        "the persona role turns sampled seeds into a full persona (JSON answer)",
        frozenset({"topic_seeds", "flaws", "style", "difficulty"}),
    ),
    PromptSpec(
        "user_sim",
        "the user simulator writes the next user message",
        frozenset(
            {
                "persona",
                "flaws",
                "style",
                "style_words",
                "topics_per_message",
                "exchange_number",
                "target_exchanges",
                "session_note",
                "history",
            }
        ),
    ),
    PromptSpec(
        "assistant",
        "generation guidance appended to the system prompt for the assistant role",
        frozenset({"system_prompt"}),
    ),
    PromptSpec(
        "assessor",
        "the judge answers one rubric criterion about a whole transcript (JSON answer)",
        frozenset(
            {
                "transcript",
                "exchange_count",
                "criterion_id",
                "criterion_name",
                "question",
                "pass_when",
                "fail_when",
                "na_when",
                "na_allowed",
                "examples",
            }
        ),
    ),
    PromptSpec(
        "fixup",
        "rewrite one assistant reply to fix a named issue, keeping continuity (or UNFIXABLE)",
        frozenset({"issue", "reasoning", "history", "user_message", "original", "next_user_message"}),
    ),
    PromptSpec(
        "entailment",
        "a separate judge checks the user's next message still follows a rewrite (JSON answer)",
        frozenset({"user_message", "rewrite", "next_user_message"}),
    ),
)

PROMPT_NAMES = tuple(spec.name for spec in PROMPT_SPECS)


def placeholders(text: str) -> set[str]:
    """Names a template refers to (`$name` and `${name}`), ignoring `$$` escapes."""
    found: set[str] = set()
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            found.add(name)
    return found


def render(template: str, **values: object) -> str:
    """Fill a template; a missing value is a programming error, so it raises (KeyError).

    A `$` that starts no name (`$5 co-pay`, a lone `$`) is text, exactly as
    `placeholders` (and so `coach config check`) reads it: `string.Template`'s
    own `substitute` would raise on it mid-run instead.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group("named") or match.group("braced")
        if name is not None:
            return str(values[name])
        return "$" if match.group("escaped") is not None else match.group(0)

    return Template.pattern.sub(fill, template)
