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

    # --- on the run and off it (the session calls these) -------------------------------------

    def join(self) -> None:
        claims.join(self.store, self.run_id, self.owner, ttl_s=self.ttl_s)

    def leave(self) -> None:
        """Give back what is still held, for another worker to take at once; stay on record as having worked."""
        claims.leave(self.store, self.run_id, self.owner)
        self.held.clear()

    def others_working(self) -> bool:
        """Whether another worker is still live on the run (then a stop here does not stop the run)."""
        return claims.others_live(self.store, self.run_id, self.owner) > 0

    # --- what the supervisor tells it ------------------------------------------------------

    def finished(self, transcript_id: str) -> None:
        """The transcript is done for this pass here (or dropped): release its claim and claim another."""
        if transcript_id in self.lost:  # not ours any more: nothing to release
            self.lost.discard(transcript_id)
            self.held.discard(transcript_id)
        elif transcript_id in self.held:
            self.held.discard(transcript_id)
            self.done_here.add(transcript_id)
            self.finished_here += 1
            claims.release_claim(self.store, transcript_id, self.owner)
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
            while len(self.held) < self.slots:
                tid = await anyio.to_thread.run_sync(self._claim)
                if tid is None:
                    break
                self.held.add(tid)  # held from here: `leave` gives it back if the run stops now
                self.claimed += 1
                await anyio.lowlevel.checkpoint()  # a stop that came during the claim ends us here
                await start(tid)
            if not self.held and await anyio.to_thread.run_sync(self._run_done):
                self.all_done = True
                return
            self._wake = anyio.Event()
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

    def _claim(self) -> str | None:
        return claims.claim_next(self.store, self.run_id, self.owner, exclude=self.done_here, ttl_s=self.ttl_s)

    def _run_done(self) -> bool:
        """Every transcript done for now: decided, waiting for a person, or failed (`--resume` retries it)."""
        return claims.unfinished(self.store, self.run_id) == 0
