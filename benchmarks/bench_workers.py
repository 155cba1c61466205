"""Many workers on one run (issue 17), on one PostgreSQL store, against the 100 ms stand-in server.

1. scale-out: exchanges per second with 4 worker processes ÷ with 1 (target ≥ 3.5), each worker with
   the same in-flight number (printed), with the workers' CPU time per exchange (on a machine with
   fewer cores than workers the ratio may be CPU-bound: the figure says so);
2. SIGKILL one of 4 workers mid-run: the run completes, 0 rows lost and 0 duplicated per table;
3. overhead: the supervisor's own cost per exchange with an instant backend, PostgreSQL ÷ SQLite;
4. replicas: one backend over 4 replicas ÷ over 1, each replica serving at most 8 requests at once
   (as a vLLM server with max_num_seqs 8 would) (target ≥ 3.5).

The stand-in server is bench_supervisor's (imported, not copied); a replica's cap is that server
with its answers queued behind 8 slots. Workers are forked from this process once it has loaded the
crisis net and imported the backends (aiohttp alone is half a second of CPU), so their start-up is
not counted against the run.

A steady state, fairly: each worker holds `2 × in-flight` transcripts, so 4 workers hold 4 times as
many as 1. Scale-out gives each worker `--transcripts` transcripts (4 workers work 4 times as many):
every claim slot then cycles through the same number of transcripts in both runs, and the start-up
(the first transcripts' persona and first calls) and the tail (the last transcripts' judging, fewer
transcripts left than slots) are the same share of both. With one fixed count, 4 workers had two
transcripts per slot against 1 worker's eight, and start-up and tail were most of their run. Both
rates are taken over the same span (the start signal to the last exchange); the steady rate
between the 10th and 90th percentile exchanges is printed beside it.

Run: .venv/bin/python benchmarks/bench_workers.py [--transcripts 64] [--exchanges 8] [--in-flight 4] [--only scale|kill|overhead|replicas]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import anyio
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_supervisor as stand_in
from bench_supervisor import new_run, start_server, timed_run

from actors.backends.router import ModelRouter
from actors.pack.loader import load_pack
from actors.run_config import OpenAIConfig, RunConfig, load_run_config
from actors.safety import load_safety_net
from actors.usecases import workers
from actors.usecases.run_settings import RunSettings
from state import claims
from state.models import Event
from state.store import Store
from tests.pg_support import create_database, pg_program, postgres_cluster
from tests.workers_support import duplicates, fork_workers, lost, worker

ROLES = ("user_sim", "assistant", "judge", "fixup", "persona", "eval_target")
REPLICA_CAP = 8
REPLICA_IN_FLIGHT = 2 * 4 * REPLICA_CAP
"""Transcripts in flight in both replica runs: twice what 4 replicas serve at once, so both runs are
bound by their replicas. With exactly 4 × 8 in flight, 4 replicas were idle whenever a transcript was
between two calls (its commits, its next prompt), and the run measured the client's gaps instead."""


# --- a throwaway PostgreSQL cluster on a Unix socket --------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A URL template (``{db}``) for a fresh cluster in a temporary folder; stopped on the way out."""
    if not (pg_program("initdb") and pg_program("pg_ctl")):
        raise SystemExit("PostgreSQL's initdb/pg_ctl are not installed")
    with postgres_cluster("coach-bench-pg-", options="-c max_connections=200") as server:
        yield server


def new_database(server: str) -> str:
    return create_database(server, "bench_", digits=8)


# --- a replica that serves 8 requests at once -----------------------------------------------------

_slots: list[float] = []


class _CappedHTTP(stand_in._FixedLatencyHTTP):
    """The stand-in server, its answers queued behind `REPLICA_CAP` slots (first come, first served).

    The stand-in schedules every answer 100 ms after its request arrived; here, when that moment
    comes, the request's service is placed on the slot free soonest — no earlier than its arrival —
    and the answer goes when that service ends. An exact queue of 8 servers of 100 ms each.
    """

    def _send(self, payload: dict) -> None:
        if payload.get("object") == "list":  # the model list (a health check): not a model call
            super()._send(payload)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        arrival = now - stand_in.DELAY_S
        slot = min(range(len(_slots)), key=_slots.__getitem__)
        done = max(arrival, _slots[slot]) + stand_in.DELAY_S
        _slots[slot] = done
        if done - now > 1e-4:
            loop.call_later(done - now, super()._send, payload)
        else:
            super()._send(payload)


def _serve_capped(port: int) -> None:
    _slots.extend([0.0] * REPLICA_CAP)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_CappedHTTP, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def start_capped() -> tuple[multiprocessing.Process, int]:
    return start_server(_serve_capped, "a capped replica")


# --- helpers ------------------------------------------------------------------------------------


def run_config_file(folder: Path, urls: list[str], max_concurrency: int) -> Path:
    path = folder / f"run-config-{len(urls)}.yaml"
    bases = "[" + ", ".join(f"{u}/v1" for u in urls) + "]"
    path.write_text(
        "backends:\n  fixed:\n    kind: openai\n    model: fixed\n"
        f"    base_url: {bases}\n    max_retries: 0\n    timeout_s: 60\n    max_concurrency: {max_concurrency}\n"
        "roles:\n" + "".join(f"  {role}: fixed\n" for role in ROLES)
    )
    return path


def exchange_times(store: Store, run_id: str) -> list[float]:
    """When each exchange of the run was committed (its ExchangeAdded event), oldest first."""
    with store.transaction() as conn:
        stamps = conn.execute(
            select(Event.created_at).where(Event.run_id == run_id, Event.kind == "ExchangeAdded")
        ).scalars()
        return sorted((s if s.tzinfo else s.replace(tzinfo=UTC)).timestamp() for s in stamps)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every core since boot (Linux): how busy the whole machine was."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def plan(url: str, pack, args, config: Path, seed: int, transcripts: int | None = None) -> str:
    store = Store(url)
    try:
        run_id, _ = workers.plan_shared_run(
            store,
            pack,
            RunSettings(
                transcripts=transcripts or args.transcripts,
                seed=seed,
                lengths=dict.fromkeys(("short", "medium", "long", "very_long"), args.exchanges),
                in_flight=args.in_flight,
                run_config=str(config),
            ),
        )
    finally:
        store.close()
    return run_id


def work_run(url: str, pack, run_id: str, config: Path, n: int, args, *, kill_after: int | None = None) -> dict:
    """`n` forked workers on the run until it is done; with `kill_after`, SIGKILL one holding claims
    once that many exchanges are in. Returns the figures."""
    go = multiprocessing.get_context("fork").Event()
    cpu0, ticks0 = children_cpu(), machine_ticks()
    procs = fork_workers(n, worker(url, pack, run_id, str(config), in_flight=args.in_flight, ttl_s=30), start=go)
    time.sleep(0.5)  # the forks are up and waiting
    started = time.time()
    go.set()
    watch = Store(url)
    killed = None
    try:
        if kill_after is not None:
            by_pid = {p.pid: p for p in procs}
            while killed is None and any(p.is_alive() for p in procs):
                if len(exchange_times(watch, run_id)) >= kill_after:
                    holding = [w for w in claims.workers(watch, run_id) if w["pid"] in by_pid and w["transcripts"]]
                    if holding:
                        killed = by_pid[holding[0]["pid"]]
                        os.kill(killed.pid, signal.SIGKILL)
                        killed.join(10)
                time.sleep(0.02)
        for p in procs:
            p.join(600)
        stamps = exchange_times(watch, run_id)
        ticks = machine_ticks()
        busy, total = ticks[0] - ticks0[0], ticks[1] - ticks0[1]
        figures = {
            "machine_busy": busy / total if total else float("nan"),
            "load": os.getloadavg()[0],
            "exchanges": len(stamps),
            "per_s": len(stamps) / (stamps[-1] - started) if stamps else 0.0,
            "steady_per_s": steady_rate(stamps),
            "wall_s": time.time() - started,
            "cpu_s": children_cpu() - cpu0,
            "exit_codes": [p.exitcode for p in procs],
            "killed": killed.exitcode if killed is not None else None,
            "lost": lost(watch, run_id),
            "duplicates": duplicates(watch, run_id),
        }
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        watch.close()
    return figures


def steady_rate(stamps: list[float]) -> float:
    """Exchanges per second between the 10th and the 90th percentile exchange: start-up and tail left out."""
    if len(stamps) < 10:
        return float("nan")
    first, last = len(stamps) // 10, len(stamps) - 1 - len(stamps) // 10
    return (last - first) / (stamps[last] - stamps[first])


def warm_imports(config: Path) -> None:
    """Build (and close) the router the workers will build, so its imports are done before they fork."""

    async def build() -> None:
        await ModelRouter.from_config(load_run_config(config)).aclose()

    anyio.run(build)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


# --- the benchmarks -------------------------------------------------------------------------------


def bench_scale_out(server: str, pack, args, config: Path) -> None:
    results = {}
    held = workers.HELD_PER_IN_FLIGHT * args.in_flight
    print(
        f"  each worker: {args.in_flight} in flight per actor, holding {held} transcripts; "
        f"{args.transcripts} transcripts of {args.exchanges} exchanges per worker "
        f"({args.transcripts // held} per claim slot in both runs)"
    )
    for n in (1, 4):
        url = new_database(server) if n == 1 else results[1]["url"]  # one store: both runs in it
        run_id = plan(url, pack, args, config, seed=n, transcripts=n * args.transcripts)
        figures = work_run(url, pack, run_id, config, n, args)
        figures["url"] = url
        results[n] = figures
        print(
            f"  {n} worker(s), {args.in_flight} in flight each: {figures['exchanges']} exchanges at "
            f"{figures['per_s']:.1f}/s (steady {figures['steady_per_s']:.1f}/s), load average {figures['load']:.1f}, "
            f"{figures['cpu_s']:.1f} s of worker CPU in {figures['wall_s']:.1f} s "
            f"({figures['cpu_s'] / max(1, figures['exchanges']) * 1000:.1f} ms CPU per exchange, judging included); "
            f"exits {figures['exit_codes']}, lost {len(figures['lost'])}; the whole machine "
            f"({os.cpu_count()} cores, every process on it) was {figures['machine_busy']:.0%} busy"
        )
    ratio = results[4]["per_s"] / results[1]["per_s"]
    steady = results[4]["steady_per_s"] / results[1]["steady_per_s"]
    saturated = results[4]["machine_busy"] >= 0.9
    print(
        f"scale-out: {results[1]['per_s']:.1f} exchanges/s with 1 worker, {results[4]['per_s']:.1f} with 4 "
        f"({args.in_flight} in flight per worker) -> ratio {ratio:.2f} (target >= 3.5) {verdict(ratio >= 3.5)}; "
        f"steady-state ratio {steady:.2f}"
        + (
            f" [CPU-bound here: the machine's {os.cpu_count()} cores were {results[4]['machine_busy']:.0%} busy "
            f"while the 4 workers ran]"
            if saturated
            else ""
        )
    )


def bench_kill(server: str, pack, args, config: Path) -> None:
    url = new_database(server)
    run_id = plan(url, pack, args, config, seed=7)
    figures = work_run(url, pack, run_id, config, 4, args, kill_after=max(4, args.transcripts * args.exchanges // 4))
    dups = figures["duplicates"]
    ok = (
        figures["killed"] == -signal.SIGKILL
        and not figures["lost"]
        and not any(dups.values())
        and sorted(figures["exit_codes"]) == sorted([-signal.SIGKILL, 0, 0, 0])
    )
    print(
        f"kill one of 4: worker SIGKILLed mid-run (exit {figures['killed']}), the others exited "
        f"{[c for c in figures['exit_codes'] if c != -signal.SIGKILL]}; run done in {figures['wall_s']:.1f} s; "
        f"lost {len(figures['lost'])}, duplicated per table: "
        + ", ".join(f"{table} {n}" for table, n in dups.items())
        + f" {verdict(ok)}"
    )
    for missing in figures["lost"]:
        print(f"  lost: {missing}")


async def _overhead(store: Store, pack, run_id: str) -> float:
    from tests.scripted import ScriptedBackend

    router = ModelRouter(RunConfig(), {"embedded": ScriptedBackend("embedded")})
    start, stamps, *_ = await timed_run(store, router, pack, run_id, in_flight=8)
    return (stamps[-1] - start) / len(stamps) * 1000


def bench_overhead(server: str, pack, tmp: Path) -> None:
    n, length = 20, 25
    sqlite = Store.for_workspace(tmp / "ws-overhead")
    pg = Store(new_database(server))
    try:
        on_sqlite = anyio.run(_overhead, sqlite, pack, new_run(sqlite, pack, n, length, "overhead-sqlite"))
        on_pg = anyio.run(_overhead, pg, pack, new_run(pg, pack, n, length, "overhead-pg"))
    finally:
        sqlite.close()
        pg.close()
    print(
        f"overhead: {on_sqlite:.2f} ms per exchange on SQLite, {on_pg:.2f} ms on PostgreSQL (Unix socket, "
        f"fsync off) -> PostgreSQL / SQLite {on_pg / on_sqlite:.2f}"
    )


async def _replica_rate(pack, tmp: Path, ports: list[int], in_flight: int) -> float:
    config = RunConfig(
        backends={
            "fixed": OpenAIConfig(
                model="fixed",
                base_url=[f"http://127.0.0.1:{p}/v1" for p in ports],
                max_concurrency=REPLICA_CAP,  # per replica: 4 replicas admit 4 times as many calls
                max_retries=0,
                timeout_s=60,
            )
        },
        roles=dict.fromkeys(ROLES, "fixed"),
    )
    router = ModelRouter.from_config(config)
    store = Store.for_workspace(tmp / f"ws-replicas-{len(ports)}")
    try:
        run_id = new_run(store, pack, in_flight, stand_in.EXCHANGES, f"replicas{len(ports)}")
        start, stamps, *_ = await timed_run(store, router, pack, run_id, in_flight=in_flight)
        spread = [r.calls for r in router.backends_for("assistant")[0].replicas.replicas]
    finally:
        await router.aclose()
        store.close()
    return len(stamps) / (stamps[-1] - start), spread


def bench_replicas(pack, tmp: Path) -> None:
    servers = [start_capped() for _ in range(4)]
    try:
        in_flight = REPLICA_IN_FLIGHT
        cpu0, wall0 = time.process_time(), time.perf_counter()
        one, _ = anyio.run(_replica_rate, pack, tmp, [servers[0][1]], in_flight)
        cpu1, wall1 = time.process_time() - cpu0, time.perf_counter() - wall0
        four, spread = anyio.run(_replica_rate, pack, tmp, [port for _, port in servers], in_flight)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        for proc, _ in servers:
            proc.kill()
    ratio = four / one
    print(
        f"replicas: {one:.1f} exchanges/s over 1 replica (8 at once), {four:.1f} over 4 "
        f"-> ratio {ratio:.2f} (target >= 3.5) {verdict(ratio >= 3.5)} "
        f"[{in_flight} transcripts in flight in both; max_concurrency {REPLICA_CAP} per replica; calls per replica "
        f"{spread}; this process used {cpu1:.1f} s of CPU in {wall1:.1f} s over 1 replica, {cpu - cpu1:.1f} s in "
        f"{wall - wall1:.1f} s over 4; load average {os.getloadavg()[0]:.1f}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--transcripts",
        type=int,
        default=64,
        help="transcripts per worker in scale-out, per run in the kill test (default 64)",
    )
    parser.add_argument("--exchanges", type=int, default=8, help="exchanges per transcript (default 8)")
    parser.add_argument(
        "--in-flight", type=int, default=4, help="in flight per worker (default 4; it holds twice as many)"
    )
    parser.add_argument(
        "--only", choices=("scale", "kill", "overhead", "replicas"), action="append", help="run only these parts"
    )
    args = parser.parse_args()
    parts = set(args.only or ("scale", "kill", "overhead", "replicas"))
    pack = load_pack()
    load_safety_net(pack)  # once, here: the forked workers inherit it
    with tempfile.TemporaryDirectory() as tmp, postgres() as server:
        proc, port = start_server()
        try:
            config = run_config_file(Path(tmp), [f"http://127.0.0.1:{port}"], max_concurrency=64)
            warm_imports(config)  # once, here: the forked workers inherit them
            if "scale" in parts:
                bench_scale_out(server, pack, args, config)
            if "kill" in parts:
                bench_kill(server, pack, args, config)
        finally:
            proc.kill()
        if "overhead" in parts:
            bench_overhead(server, pack, Path(tmp))
        if "replicas" in parts:
            bench_replicas(pack, Path(tmp))


if __name__ == "__main__":
    main()
