"""The prompt texts `coach optimize` can change, and a pack that uses a candidate's texts.

A GEPA candidate is a mapping of component name to text. Three texts shape
the conversations a pack generates: the assistant's generation guidance
(``prompts/assistant.md``, the default), the user simulator's prompt, and the
system prompt the model is trained and deployed with. A candidate is checked
before it is used: a reflection that drops a variable the code fills, or
invents one, would otherwise fail every conversation or leak a literal
``$name`` into them.
"""

from __future__ import annotations

import dataclasses

from actors.pack.domain_pack import DomainPack
from actors.pack.prompts import PROMPT_SPECS, placeholders

COMPONENTS = ("assistant", "user_sim", "system_prompt")
"""What `--component` may name; the first is the default."""

_VARIABLES = {spec.name: spec.variables for spec in PROMPT_SPECS}
_REQUIRED = {"assistant": frozenset({"system_prompt"}), "user_sim": frozenset({"persona", "history"})}


def seed_candidate(pack: DomainPack, names: tuple[str, ...]) -> dict[str, str]:
    """The pack's current texts of the named components: where the search starts."""
    return {name: pack.system_prompt if name == "system_prompt" else pack.prompts[name] for name in names}


def candidate_problems(candidate: dict[str, str]) -> list[str]:
    """Why a candidate cannot be used as it is; [] when it can."""
    problems = []
    for name, text in candidate.items():
        if not text.strip():
            problems.append(f"{name}: the text is empty")
            continue
        if name == "system_prompt":
            continue
        used = placeholders(text)
        unknown = sorted(used - _VARIABLES[name])
        missing = sorted(_REQUIRED.get(name, frozenset()) - used)
        if unknown:
            problems.append(f"{name}: unknown variable(s) {', '.join('$' + v for v in unknown)}")
        if missing:
            problems.append(f"{name}: lost the variable(s) {', '.join('$' + v for v in missing)}")
    return problems


def with_candidate(pack: DomainPack, candidate: dict[str, str]) -> DomainPack:
    """The pack with the candidate's texts in place of its own."""
    prompts = {**pack.prompts, **{k: v for k, v in candidate.items() if k != "system_prompt"}}
    system_prompt = candidate.get("system_prompt", pack.system_prompt)
    return dataclasses.replace(pack, prompts=prompts, system_prompt=system_prompt)
