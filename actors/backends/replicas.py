"""Several servers behind one backend: the least busy first, a failing one rested.

vLLM and llama.cpp scale out as replicas of one model. Rather than ask for an
outside load balancer, a backend may list several base URLs and spread its
calls itself:

- a backend's ``max_concurrency`` is per replica (what one server serves at
  once, as vLLM's ``max_num_seqs``): the backend admits ``max_concurrency``
  calls per replica, so 4 replicas serve 4 times what 1 does instead of
  sharing one replica's worth;
- each call goes to the healthy replica with the fewest calls outstanding;
- a call that names an affinity key (the judge's shared prompt prefix) prefers
  the replica that key hashes to, while that replica is not much busier than
  the least busy one and has a free place, so a server's prefix cache is
  reused across calls without queueing a call behind a full replica while
  another has room;
- a replica whose call failed at the transport level or with a 5xx is rested
  for ``rest_s`` and tried again afterwards; when every replica is resting,
  the one that has rested longest is tried.

Pure bookkeeping (no I/O): the HTTP backend reports each outcome.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

AFFINITY_SLACK = 2
"""How many more outstanding calls the affine replica may have than the least busy one."""


@dataclass
class Replica:
    base_url: str
    outstanding: int = 0
    resting_until: float = 0.0
    failures: int = 0
    calls: int = 0


class ReplicaSet:
    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        rest_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        per_replica: int | None = None,
    ) -> None:
        """`per_replica`: calls one replica serves at once (None: no limit known), which affinity respects."""
        if not base_urls:
            raise ValueError("a backend needs at least one base URL")
        self.replicas = [Replica(url.rstrip("/")) for url in base_urls]
        self.rest_s = rest_s
        self.per_replica = per_replica
        self._clock = clock

    def __len__(self) -> int:
        return len(self.replicas)

    def pick(self, affinity: str | None = None) -> Replica:
        """The replica for the next call (its outstanding count is taken by `begin`)."""
        if len(self.replicas) == 1:
            return self.replicas[0]
        now = self._clock()
        healthy = [r for r in self.replicas if r.resting_until <= now]
        if not healthy:
            return min(self.replicas, key=lambda r: r.resting_until)
        least = min(healthy, key=lambda r: r.outstanding)
        if affinity:
            preferred = self.replicas[zlib.crc32(affinity.encode()) % len(self.replicas)]
            if (
                preferred in healthy
                and preferred.outstanding <= least.outstanding + AFFINITY_SLACK
                and (self.per_replica is None or preferred.outstanding < self.per_replica)
            ):
                return preferred
        return least

    def begin(self, replica: Replica) -> None:
        replica.outstanding += 1
        replica.calls += 1

    def end(self, replica: Replica, *, failed: bool) -> None:
        replica.outstanding -= 1
        if failed:
            replica.failures += 1
            replica.resting_until = self._clock() + self.rest_s
        else:
            replica.resting_until = 0.0
