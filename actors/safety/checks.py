"""Rules of a pack's safety section that span its files, for `coach config check`.

Pydantic checks each file's shape; these are the rules a schema cannot say:
every category a lexicon, a steering line or a follow-up names must be
declared in safety.yaml; every language must have its lexicon; the fallback
country must have resources; country codes must look like codes; a pattern
must not nest unbounded repetition (the shape that makes a regex take
exponential time). Pure: data in, problems out.
"""

from __future__ import annotations

import re

from actors.pack.problems import Problem

from .prefilter import _c, _parser
from .taxonomy import LexiconFile, SafetyConfig

_COUNTRY = re.compile(r"^(?:[A-Z]{2}|INTL)$")


def config_problems(file: str, config: SafetyConfig) -> list[Problem]:
    out: list[Problem] = []
    ids = config.category_ids
    for name in sorted({i for i in ids if ids.count(i) > 1}):
        out.append(Problem(file, "categories[].id", f"duplicate category {name!r}"))
    known = set(ids)
    for category in config.steering.categories:
        if category not in known:
            out.append(
                Problem(file, f"steering.categories.{category}", "unknown category (not declared under categories)")
            )
    for code, resource in config.resources.items():
        if not _COUNTRY.match(code):
            out.append(Problem(file, f"resources.{code}", "not a country code (two upper-case letters, or INTL)"))
        for category in resource.categories:
            if category not in known:
                out.append(
                    Problem(
                        file,
                        f"resources.{code}.categories.{category}",
                        "unknown category (not declared under categories)",
                    )
                )
    if config.fallback_country not in config.resources:
        out.append(
            Problem(
                file,
                "fallback_country",
                f"{config.fallback_country!r} has no entry under resources (the panel's fallback)",
            )
        )
    if len(set(config.languages)) != len(config.languages):
        out.append(Problem(file, "languages", "a language is listed twice"))
    return out


def _nested_unbounded(items, inside: bool = False) -> bool:
    """Whether an unbounded repetition sits inside another (the shape of ``(a+)+``)."""
    for op, av in items:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or (hasattr(_c, "POSSESSIVE_REPEAT") and op is _c.POSSESSIVE_REPEAT):
            _, high, item = av
            unbounded = high == _c.MAXREPEAT or high > 50
            if (unbounded and inside) or _nested_unbounded(item, inside or unbounded):
                return True
        elif op is _c.SUBPATTERN:
            if _nested_unbounded(av[-1], inside):
                return True
        elif op is _c.BRANCH:
            if any(_nested_unbounded(alt, inside) for alt in av[1]):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT) and _nested_unbounded(av[1], inside):
            return True
    return False


def pattern_shape_problem(source: str) -> str | None:
    """Why a pattern could take exponential time, or None."""
    try:
        parsed = _parser.parse(source)
    except Exception:  # noqa: BLE001 - compile errors are reported separately
        return None
    if _nested_unbounded(list(parsed)):
        return "nests unbounded repetition (like (a+)+), which can take exponential time: bound the inner part"
    return None


def lexicon_problems(
    file: str, lex: LexiconFile, expected_language: str, config: SafetyConfig, *, shapes: bool = True
) -> list[Problem]:
    """Cross-file problems of one lexicon; ``shapes`` also parses every pattern for exponential shapes."""
    out: list[Problem] = []
    known = set(config.category_ids)
    if lex.language != expected_language:
        out.append(Problem(file, "language", f"says {lex.language!r} but the file is for {expected_language!r}"))
    for category, cat_lex in lex.categories.items():
        if category not in known:
            out.append(Problem(file, f"categories.{category}", "unknown category (not declared in safety.yaml)"))
        for i, item in enumerate(cat_lex.patterns if shapes else ()):
            source = item if isinstance(item, str) else item.re
            why = pattern_shape_problem(source)
            if why:
                out.append(Problem(file, f"categories.{category}.patterns[{i}]", why))
    for category in lex.context.followup:
        if category not in known:
            out.append(Problem(file, f"context.followup.{category}", "unknown category (not declared in safety.yaml)"))
    for i, term in enumerate(lex.key_terms):
        if len(term.strip()) < 3:
            out.append(Problem(file, f"key_terms[{i}]", "too short to be worth correcting or searching for"))
    return out
