"""A run's length classes and mix as a person types them (`short=3,medium=5`), checked before anything starts.

Why here and so strict: a bad number used to reach the planner and fail
late, or not at all. `--mix short=nan` and `--mix short=0` both planned a run
of no transcripts, `--lengths short=0` planned empty conversations, and
`--lengths short=100000` would have generated for days. Each mistake gets
one message naming the class and the value; the face adds the option.
"""

from __future__ import annotations

import math

from ..generation.run_plan import DEFAULT_LENGTHS

MAX_EXCHANGES = 500
"""Most exchanges one conversation may be planned with.

The spec's longest class is 100 exchanges (30K+ tokens). At a few hundred
tokens an exchange, 500 already fill the 128K-token context of the largest
target model, so no training example could hold such a conversation whole: a
bigger number is a typo, not a plan.
"""


class RunNumberError(ValueError):
    """A length or share a run cannot be planned with; `str(err)` says which and why."""


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise RunNumberError(f"expected CLASS=NUMBER pairs separated by commas, got {part.strip()!r}")
        if any(key.strip() == seen for seen, _ in pairs):
            raise RunNumberError(f"{key.strip()} is given twice")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_lengths(text: str | None) -> dict[str, int]:
    """`short=3,medium=5` → {"short": 3, "medium": 5}: whole numbers of exchanges, 1 to `MAX_EXCHANGES`."""
    out: dict[str, int] = {}
    for key, value in _pairs(text or ""):
        try:
            number = int(value)
        except ValueError:
            raise RunNumberError(f"{key}={value} is not a whole number of exchanges") from None
        if number < 1:
            raise RunNumberError(f"{key}={value}: a conversation needs at least 1 exchange")
        if number > MAX_EXCHANGES:
            raise RunNumberError(
                f"{key}={value} is more than {MAX_EXCHANGES} exchanges, longer than any target model can read "
                f"whole (the spec's longest class is {max(DEFAULT_LENGTHS.values())})"
            )
        out[key] = number
    return out


def parse_mix(text: str | None) -> dict[str, float]:
    """`short=1,long=3` → {"short": 1.0, "long": 3.0}: finite shares, 0 or more, not all 0."""
    out: dict[str, float] = {}
    for key, value in _pairs(text or ""):
        try:
            share = float(value)
        except ValueError:
            raise RunNumberError(f"{key}={value} is not a number") from None
        if not math.isfinite(share):
            raise RunNumberError(f"{key}={value}: a share must be a finite number")
        if share < 0:
            raise RunNumberError(f"{key}={value}: a share cannot be negative")
        out[key] = share
    if out and not sum(out.values()) > 0:
        raise RunNumberError(
            "every share is 0, so the run would plan no transcript: give at least one class a share above 0"
        )
    return out


def lengths_problem(lengths: dict[str, int], mix: dict[str, float]) -> str | None:
    """A class given a length that no mix plans (a typo such as `shrot=3`), or None."""
    classes = [*DEFAULT_LENGTHS, *(name for name in mix if name not in DEFAULT_LENGTHS)]
    unused = [name for name in lengths if name not in classes]
    if unused:
        return f"{', '.join(unused)} is not a length class (the classes are {', '.join(classes)})"
    return None


def mix_problem(mix: dict[str, float], lengths: dict[str, int]) -> str | None:
    """A class with a share but no length (neither a default class nor one given a length), or None."""
    known = {**DEFAULT_LENGTHS, **lengths}
    unknown = [name for name in mix if name not in known]
    if unknown:
        return (
            f"{', '.join(unknown)} has no length: the classes are {', '.join(known)} "
            f"(give a new one a length with --lengths {unknown[0]}=N)"
        )
    return None
