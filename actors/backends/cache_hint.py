"""Which model calls share a prompt prefix, said by the caller that knows it.

Why a hint: a local model keeps prefixes in the KV cache of one context
(`model_cache` slots), and which context a call takes decides what it must
evaluate again. Guessing from the tokens alone fails exactly where it costs:
the judge asks every criterion about one transcript in turn, and on a short
transcript each criterion's own part is about as long as the shared
transcript, so the shared prefix is under half of the prompt and a guess by
share loaded a cold context for every other criterion. The judge says its
calls belong together; the pool keeps them on the context that holds them.

A context variable, not an argument on every backend: it is a hint that only
a backend with a prefix cache reads, and it follows the judge's calls through
the router's limits and retries unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PREFIX_FAMILY: ContextVar[str | None] = ContextVar("coach_prefix_family", default=None)
"""The family of the calls made now: calls of one family share their prompt's start."""


@contextmanager
def sharing_prefix(family: str | None) -> Iterator[None]:
    """Calls made inside the block (in this task) are one family (None: no family)."""
    token = PREFIX_FAMILY.set(family)
    try:
        yield
    finally:
        PREFIX_FAMILY.reset(token)
