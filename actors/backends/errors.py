"""The error a backend call ends in, once retrying is over.

``BackendError`` is a ``CoachError``: it reaches a person as one line naming
the backend, the role and the cause. While a call is still being retried the
same type carries ``retryable`` and ``retry_after`` so the retry policy can
decide without knowing any transport.
"""

from __future__ import annotations

from state.errors import CoachError


class BackendError(CoachError):
    """A model call that failed: which backend, for which role, and why."""

    def __init__(
        self,
        backend: str,
        cause: str,
        *,
        role: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.backend = backend
        self.role = role
        self.cause = cause
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = attempts
        super().__init__(self._message())

    def _message(self) -> str:
        role = self.role or "-"
        tries = f" after {self.attempts} tries" if self.attempts > 1 else ""
        return f"backend {self.backend!r} (role {role}) failed{tries}: {self.cause}"

    def for_role(self, role: str, attempts: int) -> BackendError:
        """The same failure, now naming the role it was for and how often it was tried."""
        return BackendError(
            self.backend,
            self.cause,
            role=role,
            retryable=self.retryable,
            retry_after=self.retry_after,
            attempts=attempts,
        )
