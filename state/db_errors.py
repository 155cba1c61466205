"""What a database error means for the person running coach: busy, full, or something else.

Drivers report these as `OperationalError`s with the engine's own words;
SQLite says "database is locked" / "database or disk is full", PostgreSQL
gives SQLSTATEs (55P03 lock not available, 40P01 deadlock, 53100 disk
full). Callers ask these questions instead of matching strings themselves.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

_LOCKED_WORDS = ("database is locked", "database table is locked", "database is busy")
_LOCKED_STATES = {"55P03", "40P01", "40001"}
_FULL_WORDS = ("database or disk is full", "no space left on device")
_FULL_STATES = {"53100"}


def _words(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return str(orig).lower()


def _state(err: BaseException) -> str | None:
    orig = getattr(err, "orig", None)
    return getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)


def is_locked(err: BaseException) -> bool:
    """Another writer held the database for longer than the driver would wait."""
    if not isinstance(err, DBAPIError):
        return False
    return _state(err) in _LOCKED_STATES or any(w in _words(err) for w in _LOCKED_WORDS)


def is_full(err: BaseException) -> bool:
    """The database could not grow: the disk (or the database's size limit) is full."""
    if isinstance(err, OSError) and getattr(err, "errno", None) == 28:  # ENOSPC from a file write
        return True
    if not isinstance(err, DBAPIError):
        return False
    return _state(err) in _FULL_STATES or any(w in _words(err) for w in _FULL_WORDS)


def describe(err: BaseException) -> str:
    """One line for a person: what happened to the database, in plain words where we know them."""
    if is_full(err):
        return f"the disk holding the workspace database is full ({_words(err)}): free some space, then resume"
    if is_locked(err):
        return f"another program kept the workspace database locked ({_words(err)})"
    if isinstance(err, DBAPIError):
        return f"database error: {_words(err)}"
    return f"{type(err).__name__}: {err}"
