"""The retry policy, in one place, built from tenacity.

What is retried: a ``BackendError`` marked ``retryable`` (timeouts, connection
errors, HTTP 408/409/429/5xx, a CLI run that failed or printed garbage). What
is not: every other 4xx, a missing API key, a context overflow: retrying those
only repeats the same answer more slowly. Waits grow exponentially with
jitter; a server's ``Retry-After`` replaces the computed wait (capped, so a
hostile header cannot park a run for an hour).

A structured answer that does not parse is not a transport failure: it is
re-asked at most ``structured_retries`` times and then returned with its
``structured_error``, never raised and never repaired.

Every model call of a run passes through these, and nearly every one succeeds
at once, so the first try runs bare: tenacity's bookkeeping (its retry state,
wrapping the call, inspecting it) cost more CPU than the call's own JSON. Only
a first try that needs another hands over to tenacity, which then sees that try
as its own first attempt: the same waits, ``Retry-After``, logs and attempt count.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from .errors import BackendError
from .types import Reply

log = logging.getLogger("coach.backends")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 120.0
    structured_retries: int = 0


class wait_retry_after(wait_base):
    """Wait what the server asked for (Retry-After), else fall back to the given strategy."""

    def __init__(self, fallback: wait_base, cap_s: float) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        err = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(err, BackendError) and err.retry_after is not None:
            return max(0.0, min(err.retry_after, self.cap_s))
        return self.fallback(retry_state)


def _is_retryable(err: BaseException) -> bool:
    return isinstance(err, BackendError) and err.retryable


def _log_retry(state: RetryCallState) -> None:
    err = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("attempt %d failed (%s); retrying in %.2fs", state.attempt_number, err, wait)


class FirstTryBare:
    """A tenacity policy whose first try runs without tenacity; called like ``AsyncRetrying``.

    ``statistics["attempt_number"]`` is how many tries the last call made, as tenacity counts.
    """

    def __init__(
        self,
        policy: Callable[[], AsyncRetrying],
        *,
        retry_error: Callable[[BaseException], bool],
        retry_result: Callable[[Any], bool],
    ) -> None:
        self._policy = policy
        self._retry_error = retry_error
        self._retry_result = retry_result
        self.statistics: dict[str, Any] = {}

    async def __call__(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        self.statistics = {"attempt_number": 1}
        try:
            first = await fn()
        except Exception as err:
            if not self._retry_error(err):
                raise
            failed: Exception | None = err
        else:
            if not self._retry_result(first):
                return first
            failed = None
        tries = 0

        async def attempt() -> Any:
            nonlocal tries
            tries += 1
            if tries > 1:
                return await fn()
            if failed is not None:
                raise failed  # the bare first try's outcome, replayed as tenacity's first attempt
            return first

        retrying = self._policy()
        try:
            return await retrying(attempt)
        finally:
            self.statistics = retrying.statistics


def _never(_: Any) -> bool:
    return False


def _unparsed(reply: Any) -> bool:
    return isinstance(reply, Reply) and reply.structured_error is not None


def transport_retrying(policy: RetryPolicy) -> FirstTryBare:
    """Retries for one call's transport failures; the last ``BackendError`` is re-raised as it is."""
    return FirstTryBare(lambda: _transport_tenacity(policy), retry_error=_is_retryable, retry_result=_never)


def _transport_tenacity(policy: RetryPolicy) -> AsyncRetrying:
    return AsyncRetrying(
        sleep=anyio.sleep,
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=wait_retry_after(
            wait_exponential_jitter(
                multiplier=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_initial_s
            ),
            policy.retry_after_cap_s,
        ),
        retry=retry_if_exception(_is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )


def structured_retrying(policy: RetryPolicy) -> FirstTryBare:
    """Re-asks for an unparsable structured answer; after the last one its Reply is returned as is."""
    return FirstTryBare(lambda: _structured_tenacity(policy), retry_error=_never, retry_result=_unparsed)


def _structured_tenacity(policy: RetryPolicy) -> AsyncRetrying:
    return AsyncRetrying(
        sleep=anyio.sleep,
        stop=stop_after_attempt(policy.structured_retries + 1),
        retry=retry_if_result(_unparsed),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        reraise=True,
    )
