"""Rules that span fields or files of a domain pack.

Pydantic checks each file's shape; these checks are the ones a schema cannot
express: weights that must sum to one, criterion ids that must exist and be
unique, templates that may only use known variables, and the human rubric
document that must match rubric.yaml. Pure: data in, problems out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from .models import FlawTaxonomy, InputTaxonomy, PackManifest, Rubric
from .problems import Problem
from .prompts import PROMPT_SPECS, placeholders
from .rubric_doc import render_rubric_doc

WEIGHT_TOLERANCE = 1e-6


def _weights_sum(file: str, field: str, weights: Iterable[float]) -> list[Problem]:
    total = sum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return [Problem(file, field, f"weights sum to {total:.4g}, not 1")]
    return []


def _duplicates(file: str, field: str, names: Iterable[str], what: str) -> list[Problem]:
    return [
        Problem(file, field, f"duplicate {what} {name!r} (appears {n} times)")
        for name, n in Counter(names).items()
        if n > 1
    ]


def _range(file: str, field: str, low: int, high: int) -> list[Problem]:
    return [Problem(file, field, f"min ({low}) is greater than max ({high})")] if low > high else []


def input_taxonomy_problems(file: str, tax: InputTaxonomy) -> list[Problem]:
    out = _weights_sum(file, "topics[].weight", (t.weight for t in tax.topics))
    out += _weights_sum(file, "styles[].weight", (s.weight for s in tax.styles))
    out += _weights_sum(file, "difficulty[].weight", (d.weight for d in tax.difficulty))
    out += _duplicates(file, "topics[].name", (t.name for t in tax.topics), "topic")
    out += _duplicates(file, "styles[].name", (s.name for s in tax.styles), "style")
    out += _duplicates(file, "difficulty[].name", (d.name for d in tax.difficulty), "difficulty")
    for t in tax.topics:
        out += _duplicates(file, f"topics ({t.name}).subtopics", (s.name for s in t.subtopics), "subtopic")
    for s in tax.styles:
        out += _range(file, f"styles ({s.name}).words", *s.words)
    out += _range(file, "topics_per_message", tax.topics_per_message.min, tax.topics_per_message.max)
    out += _range(file, "topic_seeds_per_persona", tax.topic_seeds_per_persona.min, tax.topic_seeds_per_persona.max)
    return out


def flaw_taxonomy_problems(file: str, tax: FlawTaxonomy) -> list[Problem]:
    out = _weights_sum(file, "families[].weight", (f.weight for f in tax.families))
    out += _duplicates(file, "families[].name", (f.name for f in tax.families), "family")
    for fam in tax.families:
        out += _weights_sum(file, f"families ({fam.name}).patterns[].weight", (p.weight for p in fam.patterns))
    out += _duplicates(file, "families[].patterns[].id", (p.id for f in tax.families for p in f.patterns), "pattern id")
    out += _range(file, "flaws_per_persona", tax.flaws_per_persona.min, tax.flaws_per_persona.max)
    return out


def rubric_problems(file: str, rubric: Rubric) -> list[Problem]:
    out = _weights_sum(file, "categories.*.weight", (c.weight for c in rubric.categories.values()))
    ids = rubric.ids
    known = set(ids)
    out += _duplicates(file, "criteria[].id", ids, "criterion id")
    for i, c in enumerate(rubric.criteria):
        where = f"criteria[{i}] ({c.id})"
        if c.category is None and c.id not in rubric.safety_gates:
            out.append(Problem(file, f"{where}.category", "missing: only a safety gate may have no category"))
        elif c.category is not None and c.category not in rubric.categories:
            out.append(Problem(file, f"{where}.category", f"unknown category {c.category!r}"))
        for j, ex in enumerate(c.examples):
            if ex.verdict == "NA" and c.id in rubric.na_invalid:
                out.append(
                    Problem(file, f"{where}.examples[{j}].verdict", "NA example for a criterion listed in na_invalid")
                )
    for list_name in ("safety_gates", "na_invalid"):
        values = getattr(rubric, list_name)
        out += _duplicates(file, list_name, values, "entry")
        out += [Problem(file, list_name, f"unknown criterion {v!r}") for v in values if v not in known]
    used = Counter(c.category for c in rubric.criteria if c.category)
    for name in rubric.categories:
        if not used[name]:
            out.append(Problem(file, f"categories.{name}", "no criterion belongs to this category"))
    for i, r in enumerate(rubric.retired):
        where = f"retired[{i}] ({r.id})"
        if r.id in known:
            out.append(Problem(file, f"{where}.id", "also an active criterion"))
        if r.category not in rubric.categories:
            out.append(Problem(file, f"{where}.category", f"unknown category {r.category!r}"))
    out += _duplicates(file, "retired[].id", (r.id for r in rubric.retired), "retired id")
    return out


def prompt_problems(prompts: dict[str, str], shown: Callable[[str], str]) -> list[Problem]:
    out: list[Problem] = []
    for spec in PROMPT_SPECS:
        text = prompts.get(spec.name)
        if text is None:
            continue
        for name in sorted(placeholders(text) - spec.variables):
            allowed = ", ".join(sorted(spec.variables))
            out.append(Problem(shown(spec.name), f"${name}", f"unknown template variable (allowed: {allowed})"))
    return out


def semantic_problems(
    *,
    manifest: PackManifest,
    shown: Callable[[str], str],
    input_taxonomy: InputTaxonomy | None,
    flaw_taxonomy: FlawTaxonomy | None,
    rubric: Rubric | None,
    prompts: dict[str, str],
    prompts_shown: Callable[[str], str],
    rubric_doc: str | None,
) -> list[Problem]:
    out: list[Problem] = []
    if input_taxonomy is not None:
        out += input_taxonomy_problems(shown(manifest.input_taxonomy), input_taxonomy)
    if flaw_taxonomy is not None:
        out += flaw_taxonomy_problems(shown(manifest.flaw_taxonomy), flaw_taxonomy)
    rubric_clean = False
    if rubric is not None:
        found = rubric_problems(shown(manifest.rubric), rubric)
        out += found
        rubric_clean = not found
    out += prompt_problems(prompts, prompts_shown)
    if (
        rubric_doc is not None
        and rubric is not None
        and rubric_clean
        and manifest.rubric_doc
        and rubric_doc.strip() != render_rubric_doc(rubric).strip()
    ):
        out.append(
            Problem(
                shown(manifest.rubric_doc),
                "",
                f"out of date with {manifest.rubric}; regenerate it with `coach rubric doc`",
            )
        )
    return out
