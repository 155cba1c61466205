"""The one error type that reaches a person.

Every layer raises ``CoachError`` for problems the user can fix (a bad file, a
missing model, an unreachable backend). The command line prints its message as
one line and exits non-zero; anything else is a bug and keeps its traceback.
It lives in ``state`` because that is the bottom layer every other one may
import.
"""

from __future__ import annotations


class CoachError(Exception):
    """A problem the user can act on; ``str(err)`` is the whole message."""

    exit_code = 1
