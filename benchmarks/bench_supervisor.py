"""Supervisor benchmarks (issue 4), each ratio measured in one run.

1. concurrency: a loopback OpenAI-compatible server answers every request
   after a fixed 100 ms; exchanges completed per second with 32 transcripts
   in flight ÷ with 1 in flight (target ≥ 25, ideal 32).
2. overhead: a backend that answers instantly; the supervisor's own cost
   per exchange — store commits, events, prompt building (target ≤ 5 ms).
3. assessment cost: tokens the embedded model evaluates to assess one
   20-exchange transcript on all criteria ÷ the transcript's own token
   count (target ≤ 3; naive ≥ 17).

Run: .venv/bin/python benchmarks/bench_supervisor.py [--skip-embedded]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import heap
from actors.backends.router import ModelRouter
from actors.events import EventBus
from actors.generation.run_plan import persona_records, plan_run
from actors.pack.loader import load_pack
from actors.run_config import OpenAIConfig, RunConfig
from actors.safety import load_safety_net
from actors.supervisor import GenerationSettings, Supervisor
from state import pipeline as db
from state.store import Store

DELAY_S = 0.100
EXCHANGES = 20  # the spec's short transcript: long enough that a run's start-up is not the measure


# --- a fixed-latency OpenAI-compatible server on loopback ------------------------------------
#
# A bare asyncio HTTP/1.1 server (keep-alive, Content-Length bodies): it stands in for a model
# server whose only cost is its latency, so its own CPU must not count against the supervisor.
# uvicorn + Starlette spent about 0.5 ms per request here, which at 32 requests arriving
# together added a visible delay to every wave.


_replies = itertools.count(1)


def _answer(body: dict) -> dict:
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema") or {}
    props = schema.get("properties", {})
    if "answer" in props:
        content = json.dumps({"answer": "YES", "reasoning": "fine"})
    elif "name" in props:
        content = json.dumps(
            {
                "name": "Ari",
                "age_range": "30-39",
                "personality_traits": ["dry"],
                "attachment_style": "secure",
                "life_context": "Teacher.",
            }
        )
    else:
        # Every reply different, as a model's are: a canned sentence repeated verbatim would be flagged
        # as boilerplate and make the run spend its time on fixups instead of exchanges.
        n = next(_replies)
        content = (
            f"Work has been heavy since day {n}. My sleep has been off for {n} nights, "
            f"and my brother called about money for the {n}th time."
        )
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "m"),
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


class _FixedLatencyHTTP(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            method, path, _ = head[0].split(" ", 2)
            if method == "GET" and path.endswith("/models"):
                payload = {"object": "list", "data": [{"id": "fixed", "object": "model"}]}
                self._send(payload)
            else:
                payload = _answer(json.loads(body or b"{}"))
                asyncio.get_running_loop().call_later(DELAY_S, self._send, payload)

    def _send(self, payload: dict) -> None:
        if self.transport.is_closing():
            return
        data = json.dumps(payload).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data)
        )


def _serve(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_FixedLatencyHTTP, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def start_server(serve=_serve, what: str = "the benchmark server") -> tuple[multiprocessing.Process, int]:
    """The server runs in its own process, as a real one would: its CPU is not the supervisor's.

    `serve(port)` is the server's body (another benchmark's variant of the stand-in); `what` names it if it fails.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def new_run(store: Store, pack, n: int, length: int, run_id: str) -> str:
    lengths = dict.fromkeys(("short", "medium", "long", "very_long"), length)
    plan = plan_run(pack, run_id, transcripts=n, seed=1, lengths=lengths)
    db.create_run(
        store,
        run_id,
        kind="generate",
        domain=pack.name,
        seed=1,
        config={},
        personas=persona_records(pack, plan),
        transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
    )
    return run_id


async def timed_run(
    store: Store, router, pack, run_id: str, *, in_flight: int
) -> tuple[float, list[float], float, float]:
    """Run to the end: the start time, the moment each exchange was committed, and this process's
    CPU seconds from the start to the last exchange and to the end of the run."""
    bus = EventBus()
    events = bus.subscribe()
    stamps: list[float] = []
    cpu_at_last = [0.0]

    async def watch():
        async for ev in events:
            if ev.kind == "ExchangeAdded":
                stamps.append(time.perf_counter())
                cpu_at_last[0] = time.process_time()
            if ev.kind == "RunFinished":
                return

    # Start-up is not per-exchange cost: the crisis net (lexicons, classifier) loads once per
    # process, a few seconds, before a run's first assessment reads it; then the collector is set
    # up as a run's start-up does (`actors.heap`, from `actors.usecases.runs`).
    load_safety_net(pack)
    heap.tune()
    heap.settle()
    start, cpu0 = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await Supervisor(store, router, pack, bus=bus, settings=GenerationSettings(in_flight=in_flight)).run(run_id)
    return start, stamps, cpu_at_last[0] - cpu0, time.process_time() - cpu0


@dataclass
class Rate:
    per_s: float
    """Exchanges committed per second, from the start to the last exchange."""
    cpu_ms: float
    """This process's CPU per exchange over the same span: wall ratios swing with whatever else the
    machine runs, CPU time far less, so it is the figure to compare between two versions."""
    cpu_run_s: float
    wall_run_s: float


async def exchanges_per_second(router, pack, n: int, tmp: Path) -> Rate:
    store = Store.for_workspace(tmp / f"ws-{n}")
    run_id = new_run(store, pack, n, EXCHANGES, f"bench{n}")
    wall0 = time.perf_counter()
    start, stamps, cpu_gen, cpu_run = await timed_run(store, router, pack, run_id, in_flight=n)
    return Rate(
        per_s=len(stamps) / (stamps[-1] - start),
        cpu_ms=cpu_gen / len(stamps) * 1000,
        cpu_run_s=cpu_run,
        wall_run_s=time.perf_counter() - wall0,
    )


async def bench_concurrency(pack, tmp: Path) -> float:
    server, port = start_server()
    config = RunConfig(
        backends={
            "fixed": OpenAIConfig(
                model="fixed", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=64, max_retries=0, timeout_s=30
            )
        },
        roles={role: "fixed" for role in ("user_sim", "assistant", "judge", "fixup", "persona", "eval_target")},
    )
    router = ModelRouter.from_config(config)
    try:
        one = await exchanges_per_second(router, pack, 1, tmp)
        many = await exchanges_per_second(router, pack, 32, tmp)
    finally:
        await router.aclose()
        server.kill()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"  (32 in flight: this process used {many.cpu_run_s:.1f} s of CPU in {many.wall_run_s:.1f} s, judging "
        f"included; the server process shares the same {os.cpu_count()} cores; load average {load:.1f})"
    )
    print(f"  CPU per exchange up to the last one: {one.cpu_ms:.2f} ms with 1 in flight, {many.cpu_ms:.2f} ms with 32")
    ratio = many.per_s / one.per_s
    print(
        f"concurrency: {one.per_s:.2f} exchanges/s with 1 in flight, {many.per_s:.2f} with 32 "
        f"-> ratio {ratio:.1f} (target >= 25, ideal 32) {'OK' if ratio >= 25 else 'MISSED'}"
    )
    return ratio


async def bench_overhead(pack, tmp: Path) -> float:
    from tests.scripted import ScriptedBackend

    store = Store.for_workspace(tmp / "ws-overhead")
    n, length = 20, 25
    run_id = new_run(store, pack, n, length, "overhead")
    router = ModelRouter(RunConfig(), {"embedded": ScriptedBackend("embedded")})
    start, stamps, cpu, _ = await timed_run(store, router, pack, run_id, in_flight=8)
    per_exchange_ms = (stamps[-1] - start) / len(stamps) * 1000
    print(
        f"overhead: {len(stamps)} exchanges with an instant backend, {per_exchange_ms:.2f} ms each "
        f"({cpu / len(stamps) * 1000:.2f} ms of CPU) (persona, two commits, events, prompt building) "
        f"(target <= 5 ms) {'OK' if per_exchange_ms <= 5 else 'MISSED'}"
    )
    return per_exchange_ms


async def bench_assessment_cost(pack) -> float:
    from actors.assessment.assessor import assess, render_exchange
    from actors.backends.types import Message
    from actors.generation.conversation import Turn

    user = (
        "Work has been relentless: my manager moved the deadline again and I snapped at a colleague. "
        "Sleep is bad, I wake at 4 and replay conversations. My sister wants me to help with mum's move "
        "and I don't know how to say no. "
    ) * 2
    reply = (
        "**Work:** Having the deadline moved again sounds draining, and snapping is a sign of how stretched "
        "you are. One small experiment: a two-minute pause before replying to messages today. "
        "**Sleep:** Waking at four and replaying talks is common when the day has no off-switch. "
        "Maybe try writing the replay down once, then setting it aside. "
        "**Your sister:** It might help to decide what you can offer before she asks."
    )
    turns = [Turn(user, reply) for _ in range(20)]
    router = ModelRouter.from_config(RunConfig())
    try:
        judge = router.backends_for("judge")[0]
        transcript_tokens = judge.count_tokens(
            [Message(role="user", content="\n".join(render_exchange(i + 1, t) for i, t in enumerate(turns)))]
        )
        started = time.perf_counter()
        outcome = await assess(router, pack, turns)
        elapsed = time.perf_counter() - started
    finally:
        await router.aclose()
    ratio = outcome.evaluated_tokens / transcript_tokens
    print(
        f"assessment cost: {outcome.calls} judge calls over a 20-exchange transcript of {transcript_tokens} "
        f"tokens in {outcome.windows} window(s); {outcome.prompt_tokens} prompt tokens sent, "
        f"{outcome.evaluated_tokens} evaluated -> ratio {ratio:.2f} (target <= 3, naive >= 17) "
        f"{'OK' if ratio <= 3 else 'MISSED'} [{elapsed:.0f} s]"
    )
    return ratio


async def main(skip_embedded: bool) -> None:
    pack = load_pack()
    with tempfile.TemporaryDirectory() as tmp:
        await bench_concurrency(pack, Path(tmp))
        await bench_overhead(pack, Path(tmp))
    if not skip_embedded:
        await bench_assessment_cost(pack)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-embedded", action="store_true", help="skip the embedded-model assessment benchmark")
    anyio.run(main, parser.parse_args().skip_embedded)
