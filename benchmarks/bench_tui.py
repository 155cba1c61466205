"""TUI benchmarks (issues 6 and 15), each figure measured in one run of the real app, headless.

a. Monitor: event-loop p99 lag with 64 transcripts in flight. The app shows the
   monitor while a run of 64 transcripts, all in flight at once, works against
   a scripted backend that takes `--delay` seconds a call (so the supervisor
   keeps them in flight for a while rather than finishing at once). A probe
   task on the app's event loop sleeps 10 ms at a time and records how late it
   wakes. Target < 50 ms.
b. Side by side: event-loop p99 lag while two chat replies stream at once into
   the two columns, each at `--rate` tokens a second (a scripted stream of a
   Markdown reply, about what a local model writes), the same probe. Target
   < 50 ms.
c. Side by side with the two bundled models (real llama.cpp, SmolLM2 and
   Gemma 3 270M): time to first token at turn 20 ÷ turn 1, for each column,
   from Enter (the input's submit) to the first piece reaching the column on
   the event loop: the crisis net, the saves, drawing the message, fitting and
   tokenizing the prompt and llama.cpp's evaluation all count (the figure the
   engine measures, from the start of its reply, is printed beside it). Turn 1
   comes after the warm-up the screen does while the person types (the
   system prompt already read). Target ≤ 1.5 each. Without KV-cache prefix
   reuse across turns the ratio grows with the history; with it, a turn reads
   only the newest message. Also printed per turn: how many prompt tokens each
   column's model actually evaluated (measured on its llama.cpp context), the
   load-independent measure of that reuse, since on a shared two-core machine
   the same evaluation can take from 0.1 s to several seconds. The figure is the median
   over `--repeats` conversations (3) of the turn-20 time ÷ the median of the turn-1 time;
   each conversation's own ratio is printed beside it.

Beside each lag (a, b), figures that other processes on a shared machine do not inflate: the
event loop thread's own CPU time over each 10 ms sleep (p99), and its CPU time per 1000 events
handled (pipeline events in a, streamed tokens in b); and the machine's load average, before
and after. On a loaded two-core machine the wall-clock lag can be several times the CPU figure.

Run: .venv/bin/python benchmarks/bench_tui.py [--only a,b,c] [--turns 20] [--max-tokens 24] [--repeats 3]
(COACH_LLAMA_THREADS=1 keeps the two models from fighting over two cores.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.backends.router import ModelRouter
from actors.chat.pair import ChatPair
from actors.run_config import RunConfig
from coach_tui.app import CoachApp
from coach_tui.context import AppContext
from coach_tui.run_control import RunRequest
from coach_tui.run_state import RunState
from coach_tui.screens.chat import ChatScreen
from coach_tui.screens.side_by_side import SideBySideScreen
from state.chat import ChatStore
from state.status import TranscriptStatus
from tests.scripted import ScriptedBackend
from tests.tui_support import StreamingBackend

SMOL, GEMMA = "smollm2-135m-instruct", "gemma3-270m"
LAG_TARGET_MS = 50.0
RATIO_TARGET = 1.5
IN_FLIGHT = {TranscriptStatus.GENERATING, TranscriptStatus.CURATING, TranscriptStatus.ASSESSING, "fixing"}

USER_TURNS = [
    "Work has been a lot this week and I keep sleeping badly.",
    "My sister keeps calling about the move and I feel guilty saying no.",
    "I tried the walk after lunch yesterday. It helped a little.",
    "My manager gave me feedback that stung, even if it was fair.",
    "I snapped at my partner last night over nothing.",
    "Sleep was better, maybe six hours. Still tired though.",
    "I keep putting off a hard email to a client.",
    "My friend cancelled on me again and I felt stupid for caring.",
    "The move is in three weeks and nothing is packed.",
    "I noticed I get anxious on Sunday evenings.",
    "I wrote the email. It was not as bad as I feared.",
    "My mum is ill and I don't know how much to visit.",
    "I had a good day today, which feels strange to say.",
    "Work again: two deadlines landed on the same day.",
    "I said no to my sister for once. She was fine.",
    "I keep comparing myself to a colleague who got promoted.",
    "The Sunday worry came back, but smaller.",
    "Packing started. Three boxes. It's something.",
    "I want to keep the walks going after the move.",
    "Looking back, what seems to help me most?",
]

MARKDOWN_REPLY = (
    "**Work:** That sounds like a heavy week, and sleeping badly makes everything weigh more. "
    "A few things that often help:\n\n"
    "- Pick *one* task for the morning and let the rest wait until it is done.\n"
    "- Keep a short list of what you finished, so the day has an end.\n"
    "- Take the walk after lunch, even ten minutes of it.\n\n"
    "**Sleep:** A wind-down half an hour before bed, with the phone in another room, is worth a try. "
    "If a worry keeps you up, write it down with the first small step you could take tomorrow, then "
    "let the paper hold it for the night.\n\n"
    "**Your sister:** Saying no to one call is not saying no to her. You could offer a time that suits "
    "you both, and keep it short. What would feel like enough for this week?"
)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_now() -> str:
    """The machine's 1-minute load average and core count: how busy the machine was (it is shared)."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


class LagProbe:
    """Sleeps `period` at a time on the event loop and records how late each wake-up is.

    Only while `recording` (the condition measured holds, e.g. 64 transcripts in flight). Beside
    the wall-clock lag it records the event loop thread's own CPU time over each sleep: what the
    app itself spent while the probe waited, which other processes on a shared machine do not
    inflate (the wall-clock lag there can be twice the CPU figure). Divided by the events the app
    handled meanwhile (pipeline events, streamed pieces) it gives a load-independent cost.
    """

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.lags: list[float] = []
        self.cpu: list[float] = []
        self.recording = True

    async def run(self) -> None:
        while True:
            wall, cpu = time.perf_counter(), time.thread_time()
            await anyio.sleep(self.period)
            if self.recording:
                self.lags.append(time.perf_counter() - wall - self.period)
                self.cpu.append(time.thread_time() - cpu)

    def summary(self, events: int) -> dict:
        lags, cpu = self.lags or [float("nan")], self.cpu or [float("nan")]
        recorded_s = sum(self.lags) + self.period * len(self.lags)
        return {
            "samples": len(self.lags),
            "p50_ms": round(percentile(lags, 0.50) * 1000, 1),
            "p99_ms": round(percentile(lags, 0.99) * 1000, 1),
            "max_ms": round(max(lags) * 1000, 1),
            "cpu_p99_ms": round(percentile(cpu, 0.99) * 1000, 1),
            "loop_cpu_share": round(sum(self.cpu) / recorded_s, 2) if recorded_s else None,
            "events": events,
            "lag_ms_per_1000_events": round(sum(self.lags) * 1e6 / events, 1) if events else None,
            "loop_cpu_ms_per_1000_events": round(sum(self.cpu) * 1e6 / events, 1) if events else None,
        }


@asynccontextmanager
async def probing() -> AsyncIterator[LagProbe]:
    """A lag probe running beside the block, in a task group (ended with the block)."""
    probe = LagProbe()
    async with anyio.create_task_group() as group:
        group.start_soon(probe.run)
        try:
            yield probe
        finally:
            group.cancel_scope.cancel()


def lag_line(name: str, result: dict) -> str:
    """The summary line of a lag figure: wall-clock p99 against the target, then the CPU figures."""
    p99 = result["p99_ms"]
    return (
        f"{name}: {p99} ms (target < {LAG_TARGET_MS:g} ms) {verdict(p99 < LAG_TARGET_MS)}; "
        f"loop CPU per 10 ms sleep p99 {result['cpu_p99_ms']} ms; "
        f"loop CPU {result['loop_cpu_ms_per_1000_events']} ms per 1000 {result['event_kind']}; {result['load']}"
    )


def make_app(tmp: Path, *, router_factory=None, chat_backend_factory=None) -> CoachApp:
    context = AppContext(workspace_option=str(tmp / "ws"))
    return CoachApp(
        context,
        context.pack(),
        router_factory=router_factory or (lambda: ModelRouter(RunConfig(), {"embedded": ScriptedBackend("embedded")})),
        chat_backend_factory=chat_backend_factory or (lambda model: ScriptedBackend("chat")),
        chat_store=ChatStore(tmp / "chats"),
    )


async def wait_until(pilot, condition, timeout: float, step: float = 0.02, each=None) -> None:
    """Let the app run until `condition()` holds, calling `each()` (if given) at every step.

    A plain sleep, not `pilot.pause`: that repaints the screen on every call, which the app
    running for a person does not do, and the measure would count the harness's own drawing.
    """
    with anyio.fail_after(timeout):
        while not condition():
            if each is not None:
                each()
            await anyio.sleep(step)


@contextmanager
def counting_events(probe: LagProbe) -> Iterator[list[int]]:
    """Counts the pipeline events the app folds into its run state while the probe records."""
    original = RunState.apply
    counted = [0]

    def apply(state, events, now=None):
        events = list(events)
        if probe.recording:
            counted[0] += len(events)
        return original(state, events, now)

    RunState.apply = apply
    try:
        yield counted
    finally:
        RunState.apply = original


# --- a. the monitor with 64 transcripts in flight ---------------------------------------------


async def monitor_lag(transcripts: int, delay_s: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        backend = ScriptedBackend("embedded", delay_s=delay_s, max_concurrency=transcripts * 4)
        app = make_app(Path(tmp), router_factory=lambda: ModelRouter(RunConfig(), {"embedded": backend}))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.5)
            assert type(app.screen).__name__ == "MonitorScreen", app.screen
            lengths = {"short": 10, "medium": 10, "long": 10, "very_long": 10}
            request = RunRequest(transcripts=transcripts, seed=1, lengths=lengths, in_flight=transcripts)
            app.start_run(request)
            await wait_until(pilot, lambda: app.controller.active, timeout=60)
            in_flight: list[int] = []
            started = time.perf_counter()
            load = load_now()
            async with probing() as probe:

                def look() -> None:  # the lag with all of them in flight, nothing else
                    now = sum(1 for r in app.controller.state.rows.values() if r.status in IN_FLIGHT)
                    probe.recording = now >= transcripts
                    if probe.recording:
                        in_flight.append(now)

                with counting_events(probe) as events:
                    ended = ("finished", "stopped", "failed")
                    await wait_until(pilot, lambda: app.controller.state.status in ended, 600, 0.05, look)
            state = app.controller.state
            return {
                "transcripts": transcripts,
                "delay_s": delay_s,
                "in_flight_while_measured": min(in_flight, default=0),
                "measured_s": round(len(in_flight) * 0.05, 1),
                "exchanges": state.exchanges[0],
                "run_s": round(time.perf_counter() - started, 1),
                **probe.summary(events[0]),
                "event_kind": "pipeline events",
                "events_dropped": app.controller.dropped,
                "status": state.status,
                "load": f"{load} → {load_now()}",
            }


# --- b. two chat replies streaming side by side ----------------------------------------------


async def open_pair(pilot, models: tuple[str, str], settings: dict | None, warm_timeout: float) -> SideBySideScreen:
    """The chat screen, then the side-by-side screen for a new pair of these models, both warmed."""
    app = pilot.app
    app.switch_mode("chat")
    await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), timeout=30)
    chat = app.screen
    await wait_until(pilot, lambda: chat.conversation is not None and not chat.workers, timeout=warm_timeout)
    pair = ChatPair.start(app.chat_store, chat.safety, models, settings)
    screen = SideBySideScreen(pair)
    await app.push_screen(screen)
    await wait_until(pilot, lambda: screen.engines is not None and not screen.workers, timeout=warm_timeout)
    return screen


async def say(pilot, screen: SideBySideScreen, text: str, timeout: float) -> float:
    """Send `text` to both models (as Enter does) and wait for both replies to end; when it was sent."""
    turns = screen.pair.turns
    box = screen.query_one("#pair-input")
    box.value = text
    sent = time.perf_counter()
    await box.action_submit()
    await wait_until(pilot, lambda: screen.pair.turns > turns and not screen.generating, timeout=timeout)
    return sent


async def side_by_side_lag(rate: float, turns: int) -> dict:
    gap = 1.0 / rate
    left, right = StreamingBackend(MARKDOWN_REPLY, gap_s=gap), StreamingBackend(MARKDOWN_REPLY, gap_s=gap)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), chat_backend_factory={SMOL: left, GEMMA: right}.__getitem__)
        async with app.run_test(size=(160, 45)) as pilot:
            screen = await open_pair(pilot, (SMOL, GEMMA), None, warm_timeout=60)
            started = time.perf_counter()
            load = load_now()
            async with probing() as probe:
                for text in USER_TURNS[:turns]:
                    await say(pilot, screen, text, timeout=120)
            elapsed = time.perf_counter() - started
            replies = sum(1 for c in screen.pair.conversations for m in c.messages if m.role == "assistant")
            tokens = replies * len(MARKDOWN_REPLY.split(" "))
            return {
                "turns": turns,
                "tokens_per_s_each": rate,
                "stream_s": round(elapsed, 1),
                **probe.summary(tokens),
                "event_kind": "streamed tokens",
                "load": f"{load} → {load_now()}",
            }


# --- c. time to first token, turn 20 ÷ turn 1, per column, with the bundled models ------------


async def pools_of(screen: SideBySideScreen) -> list:
    return [await anyio.to_thread.run_sync(engine.backend.pool) for engine in screen.engines]


def eval_marks(pools: list) -> list[list[int]]:
    return [[len(slot.eval_sizes) for slot in pool.slots] for pool in pools]


def prompt_evaluated(pool, before: list[int]) -> int | None:
    """Prompt tokens the last reply evaluated: the first `eval` since `before` on the slot that was used."""
    for index, slot in enumerate(pool.slots):
        seen = before[index] if index < len(before) else 0
        if len(slot.eval_sizes) > seen:
            return slot.eval_sizes[seen]
    return None


class _TimedPieces:
    """A streamed call's queue of pieces that notes the generating thread's CPU time at the first one."""

    def __init__(self, pieces, started: float, out: list[float]) -> None:
        self._pieces, self._started, self._out, self._first = pieces, started, out, True

    def put(self, piece) -> None:
        if self._first:
            self._first = False
            self._out.append(time.thread_time() - self._started)
        self._pieces.put(piece)

    def get(self, *args, **kwargs):
        return self._pieces.get(*args, **kwargs)


@contextmanager
def first_token_cpu() -> Iterator[dict[str, list[float]]]:
    """CPU seconds each streamed generation spent before its first piece, by GGUF file name.

    The generating thread's own CPU time (llama.cpp evaluates the prompt on it with one thread):
    what the first token cost, without the time the thread waited for a core on a loaded machine.
    """
    from actors.backends import llama_cpp_backend

    call = llama_cpp_backend._StreamedCall
    original = call._run
    seen: dict[str, list[float]] = {}

    def run(self) -> None:
        self.pieces = _TimedPieces(self.pieces, time.thread_time(), seen.setdefault(self.pool.path.name, []))
        original(self)

    call._run = run
    try:
        yield seen
    finally:
        call._run = original


async def side_by_side_ttft(turns: int, max_tokens: int, first_message: int = 0) -> dict:
    """One conversation of `turns` turns, its messages taken in order from `USER_TURNS[first_message]`."""
    from actors.chat.engine import chat_backend

    settings = {"max_tokens": max_tokens, "temperature": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), chat_backend_factory=chat_backend)
        async with app.run_test(size=(160, 45)) as pilot:
            screen = await open_pair(pilot, (SMOL, GEMMA), settings, warm_timeout=600)
            pools = await pools_of(screen)
            ttft: list[list[float]] = [[], []]
            engine_ttft: list[list[float]] = [[], []]
            evaluated: list[list[int | None]] = [[], []]
            steered: dict[int, list[str]] = {}
            with first_token_cpu() as cpu:
                for turn in range(turns):
                    before = eval_marks(pools)
                    loop_cpu = time.thread_time()
                    sent = await say(pilot, screen, USER_TURNS[(first_message + turn) % len(USER_TURNS)], timeout=600)
                    loop_cpu = time.thread_time() - loop_cpu
                    said = screen.pair.conversations[0].messages[-2]
                    line = [f"  turn {turn + 1:>2}:"]
                    if said.meta.get("crisis"):
                        # The crisis instruction stays on this message in later prompts (see
                        # `ChatEngine._remember`), so the next turn still reads only its new message.
                        steered[turn + 1] = list(said.meta["crisis"])
                        line.append(f"[steered by the crisis net: {', '.join(said.meta['crisis'])}]")
                    for column, engine in enumerate(screen.engines):
                        # From Enter to the first piece reaching the column on the event loop (drawn
                        # at its next flush, within `FLUSH_S`): what the person waits for, the
                        # crisis net, the saves and the drawing of their message included.
                        arrived = screen.columns[column].first_piece_at
                        seconds = arrived - sent if arrived is not None else float("nan")
                        fresh = prompt_evaluated(pools[column], before[column])
                        ttft[column].append(seconds)
                        engine_ttft[column].append(engine.last.first_token_s or float("nan"))
                        evaluated[column].append(fresh)
                        model = screen.pair.models[column]
                        spent = cpu.get(pools[column].path.name) or [float("nan")]
                        line.append(
                            f"{model} first token {seconds * 1000:6.0f} ms from Enter "
                            f"({engine_ttft[column][-1] * 1000:4.0f} ms in the engine, {spent[-1] * 1000:4.0f} ms CPU), "
                            f"{fresh if fresh is not None else '?':>4} prompt tokens evaluated "
                            f"of {engine.last.prompt_messages} messages;"
                        )
                    line.append(f"event loop CPU over the turn {loop_cpu * 1000:4.0f} ms; {load_now()}")
                    print(" ".join(line), flush=True)
            out = {"turns": turns, "max_tokens": max_tokens, "steered_turns": steered, "columns": []}
            for column, model in enumerate(screen.pair.models):
                first, last = ttft[column][0], ttft[column][-1]
                cpu_s = cpu.get(pools[column].path.name, [])
                out["columns"].append(
                    {
                        "model": model,
                        "ratio": round(last / first, 2),
                        "ttft_ms": [round(t * 1000, 1) for t in ttft[column]],
                        "cpu_ttft_turn1_ms": round(cpu_s[0] * 1000) if cpu_s else None,
                        f"cpu_ttft_turn{turns}_ms": round(cpu_s[-1] * 1000) if cpu_s else None,
                        "cpu_ratio": round(cpu_s[-1] / cpu_s[0], 2) if len(cpu_s) == turns else None,
                        "evaluated_turn1": evaluated[column][0],
                        f"evaluated_turn{turns}": evaluated[column][-1],
                        "evaluated_max": max((e for e in evaluated[column] if e is not None), default=None),
                        "stored_replies": sum(1 for m in screen.pair.conversations[column].messages[1::2] if m.content),
                        "replies_by_own_model": all(
                            m.model == model
                            for m in screen.pair.conversations[column].messages
                            if m.role == "assistant"
                        ),
                    }
                )
            return out


def figure_a(args) -> tuple[dict, list[str]]:
    result = anyio.run(monitor_lag, args.transcripts, args.delay)
    return result, [
        lag_line(f"a. event-loop p99 lag, {result['in_flight_while_measured']} transcripts in flight", result)
    ]


def figure_b(args) -> tuple[dict, list[str]]:
    result = anyio.run(side_by_side_lag, args.rate, args.stream_turns)
    return result, [lag_line("b. event-loop p99 lag, two chat streams side by side", result)]


def figure_c(args) -> tuple[dict, list[str]]:
    """The ratio of medians over `--repeats` conversations, each of `--turns` turns with a fresh history.

    One conversation gives one turn-1 and one turn-20 time, each a single draw on a shared
    two-core machine (±30 % from turn to turn); the median of each over a few conversations
    measures the same ratio with less of that noise. Every conversation's own ratio is printed too.
    """
    runs = []
    for repeat in range(args.repeats):
        print(f"  conversation {repeat + 1} of {args.repeats}", flush=True)
        # Each conversation opens with another message: one opening like the last conversation's
        # would find its whole prompt in llama.cpp's cache, and turn 1 would cost next to nothing.
        runs.append(anyio.run(side_by_side_ttft, args.turns, args.max_tokens, 7 * repeat))
    lines = []
    columns = []
    for index, column in enumerate(runs[0]["columns"]):
        series = [run["columns"][index] for run in runs]
        first = statistics.median(c["ttft_ms"][0] for c in series)
        last = statistics.median(c["ttft_ms"][-1] for c in series)
        ratio = round(last / first, 2)
        columns.append({"model": column["model"], "ratio": ratio, "turn1_ms": first, f"turn{args.turns}_ms": last})
        lines.append(
            f"c. time to first token turn {args.turns} ÷ turn 1, {column['model']} column: {ratio} "
            f"(target ≤ {RATIO_TARGET:g}) {verdict(ratio <= RATIO_TARGET)}; medians over {len(runs)} conversations, "
            f"{first:.0f} → {last:.0f} ms; each conversation's own ratio: {[c['ratio'] for c in series]}; "
            f"the generating thread's CPU time to first token, turn {args.turns} ÷ turn 1: "
            f"{[c['cpu_ratio'] for c in series]}; prompt tokens evaluated turn 1 → {args.turns}: "
            f"{column['evaluated_turn1']} → {column[f'evaluated_turn{args.turns}']}; every reply stored by its own "
            f"model: {all(c['replies_by_own_model'] and c['stored_replies'] == args.turns for c in series)}"
        )
    steered = [run["steered_turns"] for run in runs if run["steered_turns"]]
    if steered:
        lines.append(f"c. turns the crisis net steered: {steered}")
    return {"repeats": len(runs), "columns": columns}, lines


FIGURES = {
    "a": ("monitor, {transcripts} transcripts in flight, scripted calls of {delay}s: event-loop lag", figure_a),
    "b": ("side by side, two replies streaming at {rate:g} tokens/s each: event-loop lag", figure_b),
    "c": (f"side by side with {SMOL} and {GEMMA}: time to first token, turn {{turns}} ÷ turn 1", figure_c),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c", help="which figures: a (monitor), b (side-by-side lag), c (ttft)")
    parser.add_argument("--transcripts", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.1, help="(a) seconds per scripted model call")
    parser.add_argument("--rate", type=float, default=50.0, help="(b) tokens a second in each column")
    parser.add_argument("--stream-turns", type=int, default=2, help="(b) replies streamed in each column")
    parser.add_argument("--turns", type=int, default=20, help="(c) turns of the side-by-side chat")
    parser.add_argument("--max-tokens", type=int, default=24, help="(c) reply length per turn")
    parser.add_argument("--repeats", type=int, default=3, help="(c) conversations; the ratio is of their medians")
    args = parser.parse_args()
    only = {part.strip() for part in args.only.split(",")}
    figures: list[str] = []
    for key, (heading, run) in FIGURES.items():
        if key not in only:
            continue
        print(f"{key}. {heading.format(**vars(args))}", flush=True)
        result, lines = run(args)
        print(f"   {result}")
        for line in lines:
            print("   " + line, flush=True)
        figures.extend(lines)

    print("\nSummary")
    for line in figures:
        print("  " + line)


if __name__ == "__main__":
    main()
