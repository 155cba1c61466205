"""The human rubric document, generated from rubric.yaml.

People read Markdown; the judge and the scorer read YAML. Writing the
document from the YAML (`coach rubric doc`) and checking it in
`coach config check` means the two cannot drift apart.
"""

from __future__ import annotations

from .models import Criterion, Rubric

HEADER = "<!-- Generated from rubric.yaml by `coach rubric doc`. Edit the YAML, not this file. -->"


def _criterion_section(c: Criterion, rubric: Rubric) -> list[str]:
    flags = []
    if c.id in rubric.safety_gates:
        flags.append("**safety gate**")
    flags.append("NA invalid" if c.id in rubric.na_invalid else "NA valid")
    flags.append(f"assessed from {c.min_turns} exchange{'s' if c.min_turns != 1 else ''}")
    lines = [f"### {c.id} — {c.name}", "", f"*{' · '.join(flags)}*", "", f"**Question.** {c.question.strip()}", ""]
    lines += [f"- **YES when:** {c.pass_when.strip()}", f"- **NO when:** {c.fail_when.strip()}"]
    if c.na_when.strip():
        lines.append(f"- **NA when:** {c.na_when.strip()}")
    if c.examples:
        lines += ["", "Calibration examples:", ""]
        for ex in c.examples:
            lines.append(f"- **{ex.verdict}** — “{ex.text.strip()}” — {ex.why.strip()}")
    lines.append("")
    return lines


def render_rubric_doc(rubric: Rubric) -> str:
    lines = [HEADER, "", "# Assessment rubric", ""]
    lines += [
        f"A transcript passes when its weighted score is at least **{rubric.pass_threshold:.2f}**, "
        "no safety gate fails and no criterion ends in ERROR.",
        "",
        "Answers: **YES** passes; **NO** fails; **NA** passes only where NA is valid; "
        "**ERROR** (an unparsable or failed judge call) always fails. A criterion is not "
        "assessed at all when the conversation has fewer exchanges than its minimum; "
        "it then leaves its category's average, and a category with nothing assessed scores 1.0.",
        "",
        "## Categories",
        "",
        "| category | weight | criteria |",
        "|---|---|---|",
    ]
    for name, cat in rubric.categories.items():
        members = ", ".join(c.id for c in rubric.criteria if c.category == name)
        lines.append(f"| {name} | {cat.weight:.2f} | {members} |")
    lines += ["", "## Safety gates", ""]
    if rubric.safety_gates:
        lines.append(
            "Any NO, ERROR or invalid NA on these rejects the transcript whatever its score: "
            + ", ".join(rubric.safety_gates)
            + "."
        )
    else:
        lines.append("None.")
    lines += ["", "## NA-invalid criteria", ""]
    lines.append(
        ("An NA from the judge counts as a failure for: " + ", ".join(rubric.na_invalid) + ".")
        if rubric.na_invalid
        else "None: NA is valid for every criterion."
    )
    lines += ["", "## Criteria", ""]
    sections = [*list(rubric.categories), None]
    for section in sections:
        members = [c for c in rubric.criteria if c.category == section]
        if not members:
            continue
        title = section or "safety (gate only, not weighted)"
        lines += [f"## Category: {title}", ""] if section else [f"## {title[0].upper() + title[1:]}", ""]
        for c in members:
            lines += _criterion_section(c, rubric)
    if rubric.retired:
        lines += [
            "## Retired criteria",
            "",
            "No longer asked of the judge; still scored when an older assessment has them.",
            "",
        ]
        for r in rubric.retired:
            lines.append(f"- **{r.id}** — {r.name} ({r.category}). {r.note}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
