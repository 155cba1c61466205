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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def transport_retrying(policy: RetryPolicy) -> AsyncRetrying:
    """Retries for one call's transport failures; the last ``BackendError`` is re-raised as it is."""
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


def structured_retrying(policy: RetryPolicy) -> AsyncRetrying:
    """Re-asks for an unparsable structured answer; after the last one its Reply is returned as is."""
    return AsyncRetrying(
        sleep=anyio.sleep,
        stop=stop_after_attempt(policy.structured_retries + 1),
        retry=retry_if_result(lambda reply: isinstance(reply, Reply) and reply.structured_error is not None),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        reraise=True,
    )
