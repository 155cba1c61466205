"""How far several judges agree: Cohen's kappa per criterion.

Raw agreement flatters judges that answer YES to almost everything; kappa
discounts the agreement two judges would reach by chance given how often
each says YES, NO or NA.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Kappa of two raters over the same items; None when there are no items.

    When both raters use a single identical label throughout, chance
    agreement is 1 and kappa is undefined; we return 1.0 (they agree
    perfectly) rather than a division by zero.
    """
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def agreement_by_criterion(answers: dict[str, dict[str, list[str]]]) -> dict[str, dict]:
    """criterion -> {"kappa": mean pairwise kappa, "agreement": share of identical answers, "items": n}.

    `answers[criterion][judge]` lists that judge's answers over the same
    transcripts, in the same order.
    """
    out: dict[str, dict] = {}
    for criterion, by_judge in answers.items():
        judges = sorted(by_judge)
        pairs = list(combinations(judges, 2))
        if not pairs:
            continue
        kappas = [k for x, y in pairs if (k := cohen_kappa(by_judge[x], by_judge[y])) is not None]
        n = len(by_judge[judges[0]])
        same = sum(len({by_judge[j][i] for j in judges}) == 1 for i in range(n))
        out[criterion] = {
            "kappa": sum(kappas) / len(kappas) if kappas else None,
            "agreement": same / n if n else None,
            "items": n,
        }
    return out
