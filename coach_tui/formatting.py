"""Small text formats shared by the headless views and the screens, so both say the same thing."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """H:MM:SS, or ? when unknown (an ETA before the first step)."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
