"""Working a shared run: several worker processes, each claiming transcripts (`state.claims`).

A supervisor on its own works every unfinished transcript of its run. One
given a `ClaimFeeder` works only what it claims: it takes up to `slots`
transcripts, heartbeats its claims while it works, releases each when the
transcript is done for this pass, and claims the next. When nothing is free
it waits — another worker may still finish, or die and leave its claims to
expire — until every transcript of the run is done for now, and only then
ends. A claim lost after a stall (taken over by another worker) is dropped at
its next step, so two workers do not both go on with it; the step keys
(`state.steps`) keep what both may have written in that instant from being
written twice.

Why a feeder beside the supervisor, not a second supervisor: the steps, their
retries and their failures are the same whoever owns the run; only where the
transcripts come from and when the pass ends differ.

Why the store is only touched from the feeder's own task, in a worker thread:
the supervisor tells it a transcript is done from the event loop, and a release
written there (a round trip to a database that may be on another machine) held
up every other transcript of the worker for that long. A done transcript's
claim is given back with the next claims, in one transaction, and the free
slots are filled together (`claims.claim_many`) rather than one claim per
transaction each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import anyio.to_thread

from state import claims
from state.leases import DEFAULT_TTL_S, Owner
from state.store import Store

Start = Callable[[str], Awaitable[None]]


class ClaimFeeder:
    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        slots: int,
        owner: Owner | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        poll_s: float = 1.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.slots = slots
        self.owner = owner or Owner.here()
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.held: set[str] = set()
        self.done_here: set[str] = set()
        self.lost: set[str] = set()
        self.claimed = 0
        """Transcripts this worker took up (taken over ones included)."""
        self.finished_here = 0
        self.all_done = False
        self._wake = anyio.Event()
        self._to_release: list[str] = []
        """Done here, their claims not yet given back (the feeder's next transaction does it)."""

    # --- on the run and off it (the session calls these) -------------------------------------

    def join(self) -> None:
        claims.join(self.store, self.run_id, self.owner, ttl_s=self.ttl_s)

    def leave(self) -> None:
        """Give back what is still held, for another worker to take at once; stay on record as having worked."""
        claims.leave(self.store, self.run_id, self.owner)
        self.held.clear()
        self._to_release.clear()

    def others_working(self) -> bool:
        """Whether another worker is still live on the run (then a stop here does not stop the run)."""
        return claims.others_live(self.store, self.run_id, self.owner) > 0

    # --- what the supervisor tells it ------------------------------------------------------

    def finished(self, transcript_id: str) -> None:
        """The transcript is done for this pass here (or dropped): its claim goes back and another is claimed.

        Called on the event loop: it only notes the release, which the feeder writes with its next claims.
        """
        if transcript_id in self.lost:  # not ours any more: nothing to release
            self.lost.discard(transcript_id)
            self.held.discard(transcript_id)
        elif transcript_id in self.held:
            self.held.discard(transcript_id)
            self.done_here.add(transcript_id)
            self.finished_here += 1
            self._to_release.append(transcript_id)
        self._wake.set()

    def still_ours(self, transcript_id: str) -> bool:
        """False once another worker took the claim over: the transcript's next step must not run here."""
        return transcript_id not in self.lost

    # --- its own tasks -----------------------------------------------------------------------

    async def work(self, start: Start, on_done: Callable[[], None]) -> None:
        """Claim and heartbeat until the whole run is done for now; then `on_done`."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            await self._feed(start)
            tg.cancel_scope.cancel()
        on_done()

    async def _feed(self, start: Start) -> None:
        while True:
            self._wake = anyio.Event()  # a transcript done from here on wakes the wait below
            while len(self.held) < self.slots or self._to_release:
                releasing, self._to_release = self._to_release, []
                taken = await anyio.to_thread.run_sync(self._claim, self.slots - len(self.held), releasing)
                for tid in taken:
                    self.held.add(tid)  # held from here: `leave` gives it back if the run stops now
                    self.claimed += 1
                await anyio.lowlevel.checkpoint()  # a stop that came during the claim ends us here
                for tid in taken:
                    await start(tid)
                if not taken:
                    break
            if not self.held and await anyio.to_thread.run_sync(self._run_done):
                self.all_done = True
                return
            with anyio.move_on_after(self.poll_s):
                await self._wake.wait()

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.ttl_s / 3)
            try:
                lost = await anyio.to_thread.run_sync(self._renew, sorted(self.held - self.lost))
            except Exception:  # noqa: BLE001 - a busy or failing database: the next beat tries again
                continue
            self.lost.update(lost)

    def _renew(self, held: list[str]) -> list[str]:
        claims.beat(self.store, self.run_id, self.owner, ttl_s=self.ttl_s)
        return claims.heartbeat(self.store, held, self.owner, ttl_s=self.ttl_s) if held else []

    def _claim(self, free: int, releasing: list[str]) -> list[str]:
        """Give back `releasing` and claim up to `free` more, in one transaction where the store allows."""
        return claims.claim_many(
            self.store, self.run_id, self.owner, free, exclude=self.done_here, ttl_s=self.ttl_s, release=releasing
        )

    def _run_done(self) -> bool:
        """Every transcript done for now: decided, waiting for a person, or failed (`--resume` retries it)."""
        return claims.unfinished(self.store, self.run_id) == 0
