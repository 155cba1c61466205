"""The lease that makes this process the one owner of a run, and its heartbeat.

`take` is called before any work, so a second resumer — another shell, or
the app — is refused with the owner's host and pid before it plans or asks
anything. `keep` runs in the supervisor's task group: it renews the lease
every `interval_s` and calls `on_lost` when the lease is no longer ours (it
expired while this process was frozen and someone took it over), so two
processes never go on working the same run. A renewal that fails because
the database is busy is tried again at the next beat; the lease's length
leaves room for several.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from state import leases
from state.leases import DEFAULT_TTL_S, Holder, Owner
from state.store import Store


class RunLease:
    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        owner: Owner | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        interval_s: float | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.scope = leases.run_scope(run_id)
        self.owner = owner or Owner.here()
        self.ttl_s = ttl_s
        self.interval_s = interval_s if interval_s is not None else ttl_s / 6
        self.lost = False
        self.held: Holder | None = None

    def take(self) -> Holder:
        """Become the run's owner, or raise `LeaseHeld` naming the live one."""
        self.held = leases.acquire(
            self.store, self.scope, self.owner, ttl_s=self.ttl_s, run_id=self.run_id, what=f"run {self.run_id}"
        )
        return self.held

    def release(self) -> None:
        if self.held is not None and not self.lost:
            leases.release(self.store, self.scope, self.owner)
        self.held = None

    async def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew every `interval_s` until cancelled; tell `on_lost` once if the lease stops being ours."""
        while True:
            await anyio.sleep(self.interval_s)
            try:
                ours = leases.renew(self.store, self.scope, self.owner, ttl_s=self.ttl_s)
            except Exception:  # noqa: BLE001 - a busy or failing database: the next beat tries again
                continue
            if not ours:
                self.lost = True
                on_lost()
                return
