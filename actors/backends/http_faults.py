"""How HTTP failures become ``BackendError``: one classification for every HTTP backend.

Retryable: timeouts, connection failures, 408 (request timeout), 409
(conflict / lock contention), 429 (rate limited), and every 5xx including
Anthropic's 529 (overloaded). Everything else in 4xx is the request's or the
key's fault, and repeating it cannot help. ``Retry-After`` (seconds or an HTTP
date) is carried along for the retry policy to honour.
"""

from __future__ import annotations

import email.utils
import json
import time

import httpx

from .errors import BackendError
from .urls import public

RETRYABLE_STATUS = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``retry-after`` (delta seconds or HTTP date), if the server said."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_detail(response: httpx.Response) -> str:
    """The vendor's own words: ``{"error": {"type", "message"}}`` in both APIs, else the body's start."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200].strip() or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return ": ".join(str(p) for p in (kind, message) if p) or json.dumps(error)[:200]
    if isinstance(error, str):
        return error
    if isinstance(body, dict) and "detail" in body:  # FastAPI-style servers (llama-cpp-python's)
        return json.dumps(body["detail"])[:300]
    return json.dumps(body)[:200]


def status_error(backend: str, response: httpx.Response) -> BackendError:
    status = response.status_code
    return BackendError(
        backend,
        f"HTTP {status} from {public(response.request.url)}: {error_detail(response)}",
        retryable=is_retryable_status(status),
        retry_after=retry_after(response),
    )


def transport_error(backend: str, err: httpx.HTTPError, url: str) -> BackendError:
    if isinstance(err, httpx.TimeoutException):
        return BackendError(backend, f"timed out talking to {url} ({type(err).__name__})", retryable=True)
    if isinstance(err, httpx.TransportError):
        return BackendError(backend, f"cannot reach {url}: {err or type(err).__name__}", retryable=True)
    return BackendError(backend, f"HTTP error talking to {url}: {err}")
