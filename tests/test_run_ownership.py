"""One owner per run: the lease in the store, its heartbeat, takeover of an expired one, and a second
resumer refused from either face, with the owner named."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import anyio
import pytest
from click.testing import CliRunner
from sqlmodel import select

from actors.usecases import runs
from actors.usecases.run_settings import RunSettings
from coach_tui.cli import main
from state import leases
from state import pipeline as db
from state.leases import LeaseHeld, Owner
from state.models import Exchange, Lease
from tests.tui_support import make_app, scripted_router, text_of, wait_for

pytestmark = pytest.mark.anyio

SMALL = {"short": 3, "medium": 3, "long": 3, "very_long": 3}


def planned(store, pack, n: int = 1) -> tuple[str, RunSettings]:
    return runs.plan_new_run(store, pack, RunSettings(transcripts=n, seed=4, lengths=SMALL), source="test")


def other_process(host: str = "elsewhere", pid: int = 4242) -> Owner:
    return Owner(id=f"{host}-{pid}", host=host, pid=pid)


def put_lease(store, run_id: str, owner: Owner, *, expires_in_s: float) -> None:
    now = leases.now_utc()
    with store.session() as s:
        s.add(
            Lease(
                scope=leases.run_scope(run_id),
                run_id=run_id,
                owner=owner.id,
                host=owner.host,
                pid=owner.pid,
                acquired_at=now - timedelta(seconds=60),
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=expires_in_s),
            )
        )


# --- the lease itself ---------------------------------------------------------------------------


def test_a_lease_is_taken_once_renewed_by_its_owner_and_given_back(store):
    me, them = Owner.here(), other_process()
    held = leases.acquire(store, "run:r1", me, ttl_s=30)
    assert (held.owner, held.host, held.pid) == (me.id, socket.gethostname(), os.getpid())
    with pytest.raises(LeaseHeld) as refused:
        leases.acquire(store, "run:r1", them, ttl_s=30)
    assert f"{socket.gethostname()} pid {os.getpid()} since" in str(refused.value)
    assert leases.acquire(store, "run:r1", me, ttl_s=30).acquired_at == held.acquired_at  # renewing keeps "since"
    assert leases.renew(store, "run:r1", me, ttl_s=30) and not leases.renew(store, "run:r1", them, ttl_s=30)
    leases.release(store, "run:r1", them)  # not theirs to give back
    assert leases.holder(store, "run:r1").owner == me.id
    leases.release(store, "run:r1", me)
    assert leases.holder(store, "run:r1") is None
    assert leases.acquire(store, "run:r1", them, ttl_s=30).owner == them.id
    # Scopes are independent: a transcript can be claimed while its run is held (several workers, later).
    assert leases.acquire(store, "transcript:r1-t0000", me, ttl_s=30).owner == me.id


def test_an_expired_lease_is_taken_over_and_a_dead_local_owner_at_once(store):
    put_lease(store, "r1", other_process(), expires_in_s=-1)
    me = Owner.here()
    assert leases.acquire(store, "run:r1", me).owner == me.id
    # A holder on this host whose process is gone does not lock the run until its expiry.
    dead = Owner(id="dead", host=socket.gethostname(), pid=_dead_pid())
    put_lease(store, "r2", dead, expires_in_s=600)
    assert leases.live_holder(store, "run:r2") is None
    assert leases.acquire(store, "run:r2", me).owner == me.id
    # A live holder elsewhere is not.
    put_lease(store, "r3", other_process(), expires_in_s=600)
    with pytest.raises(LeaseHeld, match="elsewhere pid 4242"):
        leases.acquire(store, "run:r3", me)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- sessions -----------------------------------------------------------------------------------


async def test_a_second_resumer_is_refused_while_the_first_works(store, pack):
    run_id, settings = planned(store, pack, n=2)
    first = runs.RunSession(store, pack, run_id, settings, make_router=lambda s: scripted_router(delay_s=0.02))
    second = runs.RunSession(store, pack, run_id, settings, make_router=lambda s: scripted_router())
    async with anyio.create_task_group() as tg:
        done = []

        async def work() -> None:
            done.append(await first.run())

        tg.start_soon(work)
        with anyio.fail_after(10):
            while store.count(Exchange) == 0:
                await anyio.sleep(0.01)
        with pytest.raises(LeaseHeld) as refused:
            await second.run()
        assert f"run {run_id} is being worked on by another process ({socket.gethostname()} pid {os.getpid()}" in str(
            refused.value
        )
        with pytest.raises(LeaseHeld):
            second.check_owner()
    assert done[0].status == "finished"
    # The first gave its lease back; a later resume works.
    assert leases.holder(store, leases.run_scope(run_id)) is None
    assert (await second.run()).status == "finished"


async def test_the_heartbeat_keeps_a_short_lease_alive(store, pack):
    run_id, settings = planned(store, pack, n=2)
    session = runs.RunSession(
        store,
        pack,
        run_id,
        settings,
        make_router=lambda s: scripted_router(delay_s=0.05),
        lease_ttl_s=0.4,
        heartbeat_s=0.05,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.run)
        await anyio.sleep(1.0)  # more than twice the lease's length
        held = leases.live_holder(store, leases.run_scope(run_id))
        assert held is not None and held.owner == session.lease.owner.id
        with pytest.raises(LeaseHeld):
            leases.acquire(store, leases.run_scope(run_id), other_process(), ttl_s=5)
        session.stop()
    assert db.get_run(store, run_id).status == "stopped"


async def test_a_lease_lost_to_another_process_stops_the_run_without_touching_its_status(store, pack):
    run_id, settings = planned(store, pack, n=2)
    session = runs.RunSession(
        store,
        pack,
        run_id,
        settings,
        make_router=lambda s: scripted_router(delay_s=0.05),
        lease_ttl_s=5,
        heartbeat_s=0.05,
    )
    them = other_process()
    async with anyio.create_task_group() as tg:
        result = []

        async def work() -> None:
            result.append(await session.run())

        tg.start_soon(work)
        await anyio.sleep(0.3)
        with store.session() as s:  # as if our heartbeat had stalled past expiry and they took over
            lease = s.get(Lease, leases.run_scope(run_id))
            lease.owner, lease.host, lease.pid = them.id, them.host, them.pid
        with anyio.fail_after(5):
            while not result:
                await anyio.sleep(0.02)
    summary = result[0]
    assert summary.status == "stopped" and "taken over" in summary.error
    assert db.get_run(store, run_id).status == "running"  # theirs to write now
    assert leases.holder(store, leases.run_scope(run_id)).owner == them.id


# --- the faces ----------------------------------------------------------------------------------


def test_the_cli_refuses_a_run_another_process_owns(tmp_path, pack, clean_env):
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    run_id, _ = planned(store, pack)
    put_lease(store, run_id, other_process("build-box", 777), expires_in_s=600)
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "run", "--resume", run_id])
    assert result.exit_code == 1
    assert f"run {run_id} is being worked on by another process (build-box pid 777 since" in result.output
    assert "Traceback" not in result.output
    assert store.count(Exchange) == 0


def test_a_lease_taken_between_the_check_and_the_start_is_still_one_clear_line(tmp_path, pack, clean_env, monkeypatch):
    from state.store import Store

    store = Store.for_workspace(tmp_path / "ws")
    run_id, _ = planned(store, pack)
    put_lease(store, run_id, other_process("build-box", 778), expires_in_s=600)
    monkeypatch.setattr(runs.RunSession, "check_owner", lambda self: None)  # the other process won the race
    result = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "run", "--resume", run_id])
    assert result.exit_code == 1
    assert "coach: error: run" in result.output and "(build-box pid 778 since" in result.output
    assert "Traceback" not in result.output and "ExceptionGroup" not in result.output


async def test_the_app_shows_a_run_owned_elsewhere_follows_it_and_refuses_to_resume_it(tmp_path, pack):
    app = make_app(tmp_path)
    store = app.store
    run_id, settings = planned(store, pack, n=2)
    # The other process: a session in this test, working slowly, holding the run's lease.
    other = runs.RunSession(
        store,
        pack,
        run_id,
        settings,
        make_router=lambda s: scripted_router(delay_s=0.15),
        owner=other_process(socket.gethostname(), os.getpid()),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(other.run)
        with anyio.fail_after(10):
            while leases.holder(store, leases.run_scope(run_id)) is None:
                await anyio.sleep(0.01)
        async with app.run_test(size=(110, 30)) as pilot:
            await wait_for(pilot, lambda: app.controller.state.run_id == run_id)
            assert app.controller.state.status == "elsewhere"
            headline = text_of(app.screen.query_one("#headline"))
            assert f"running in another process ({socket.gethostname()} pid {os.getpid()}" in headline
            seen = app.controller.state.exchanges[0]
            await wait_for(pilot, lambda: app.controller.state.exchanges[0] > seen, timeout=15)  # followed live
            await pilot.press("u")
            await pilot.pause(0.2)
            assert not app.controller.active  # refused: no second worker
            assert any("running in another process" in n.message for n in app._notifications)
            await wait_for(pilot, lambda: app.controller.state.status == "finished", timeout=30)
        tg.cancel_scope.cancel()
    with store.session() as s:
        numbers = [(e.transcript_id, e.number) for e in s.exec(select(Exchange))]
    assert len(numbers) == len(set(numbers)) == 2 * 3
