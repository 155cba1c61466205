"""Optimisation judge cost (issue 18): tokens the judge evaluates ÷ prompt tokens sent to it, over a run.

A small `coach optimize` runs through the use-case layer (`open_optimization`)
on the bundled models, every role on the embedded llama.cpp model, with the
bundled therapy pack. Each judge call reports the prompt tokens it sent and
how many of them llama.cpp actually evaluated (the rest came from the KV
cache of an earlier call: measured per call, see `actors.backends.model_cache`);
each scored conversation stores both sums with its rollout. The figure is
their ratio over every judge call of the run (target ≤ 0.2: the transcript
comes first and the criterion last, so the criteria of one transcript share
its prefix).

Also printed, to tell a cache that missed from a prompt that cannot do better:
the *floor*, what the same judge prompts would cost with perfect reuse of the
previous call's prefix within each transcript (the first call whole, then only
each criterion's own part). When the ratio sits at the floor and the floor is
above the target, the criterion part is the cost, not the cache.

`--floor-only` prints just the floor for typical conversations of several
lengths (tokenizing only, seconds): how long a transcript must be before the
criterion parts stop dominating.

Run: .venv/bin/python benchmarks/bench_optimize.py [--exchanges 3] [--max-tokens 256] [--max-calls 4] [-v]
     .venv/bin/python benchmarks/bench_optimize.py --floor-only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.assessment.assessor import due_criteria, judge_prompt, render_exchanges
from actors.backends.types import Message
from actors.generation.conversation import Turn
from actors.pack.loader import load_pack
from actors.usecases.optimizations import OptimizeConfig, open_optimization, optimization_snapshot
from state.store import Store

TARGET = 0.2
USER = (
    "Work has been relentless: my manager moved the deadline again and I snapped at a colleague. "
    "Sleep is bad, I wake at 4 and replay conversations. My sister wants me to help with mum's move "
    "and I don't know how to say no."
)
REPLY = (
    "**Work:** Having the deadline moved again sounds draining, and snapping is a sign of how stretched "
    "you are. One small experiment: a two-minute pause before replying to messages today. "
    "**Sleep:** Waking at four and replaying talks is common when the day has no off-switch. "
    "Maybe try writing the replay down once, then setting it aside. "
    "**Your sister:** It might help to decide what you can offer before she asks."
)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def floor_tokens(judge, pack, turns: list[Turn]) -> tuple[int, int]:
    """(sent, evaluated with perfect reuse of the previous call's prefix) for one transcript's judge calls."""
    text = "\n".join(render_exchanges(pack, turns))
    sent = evaluated = 0
    previous: list[int] = []
    for criterion in due_criteria(pack.rubric, len(turns)):
        tokens = judge.tokenize([Message(role="user", content=judge_prompt(pack, criterion, text, len(turns)))])[0]
        sent += len(tokens)
        evaluated += len(tokens) - common_prefix(previous, tokens)
        previous = tokens
    return sent, evaluated


async def bench(args: argparse.Namespace) -> float:
    pack = load_pack()
    config = OptimizeConfig(
        personas=args.personas,
        validation=1,
        exchanges=args.exchanges,
        max_tokens=args.max_tokens,
        max_calls=args.max_calls,
        minibatch=1,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        store = Store.for_workspace(workspace)
        report = print if args.verbose else (lambda line: None)
        started = time.perf_counter()
        async with open_optimization(store, pack, config, workspace=workspace, report=report) as session:
            outcome = await session.run()
            elapsed = time.perf_counter() - started
            snapshot = optimization_snapshot(store, outcome.run_id)
            judge = session.optimizer.router.backends_for("judge")[0]
            floors = [
                floor_tokens(judge, pack, [Turn(user, reply) for user, reply in r.turns]) for r in snapshot.rollouts
            ]
    sent = sum(r.judge_prompt_tokens for r in snapshot.rollouts)
    evaluated = sum(r.judge_evaluated_tokens for r in snapshot.rollouts)
    floor = sum(e for _, e in floors) / max(1, sum(s for s, _ in floors))
    ratio = evaluated / max(1, sent)
    calls = len(snapshot.rollouts) * len(due_criteria(pack.rubric, config.exchanges))
    print(
        f"optimisation judge calls: {calls} calls over {len(snapshot.rollouts)} conversations of "
        f"{config.exchanges} exchanges ({len(outcome.candidates)} candidate(s)); {sent} prompt tokens sent, "
        f"{evaluated} evaluated -> ratio {ratio:.3f} (target <= {TARGET}; floor with perfect prefix reuse "
        f"{floor:.3f}) {'OK' if ratio <= TARGET else 'MISSED'} [{elapsed:.0f} s]"
    )
    return ratio


def floor_only() -> None:
    from actors.backends.router import ModelRouter
    from actors.run_config import RunConfig

    pack = load_pack()
    judge = ModelRouter.from_config(RunConfig()).backends_for("judge")[0]
    for exchanges in (1, 3, 5, 10, 20):
        turns = [Turn(USER, REPLY) for _ in range(exchanges)]
        sent, evaluated = floor_tokens(judge, pack, turns)
        calls = len(due_criteria(pack.rubric, exchanges))
        print(
            f"floor, {exchanges:2d} typical exchanges ({sent // calls} tokens per judge prompt, {calls} criteria): "
            f"{evaluated / sent:.3f} {'<=' if evaluated / sent <= TARGET else '>'} {TARGET}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", type=int, default=3)
    parser.add_argument("--exchanges", type=int, default=3, help="per conversation (coach optimize's default: 3)")
    parser.add_argument("--max-tokens", type=int, default=256, help="per message (coach optimize's default: 256)")
    parser.add_argument("--max-calls", type=int, default=4, help="conversations generated and judged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true", help="print the optimisation's report lines")
    parser.add_argument("--floor-only", action="store_true", help="only the floor for typical conversations")
    args = parser.parse_args()
    if args.floor_only:
        floor_only()
    else:
        anyio.run(bench, args)


if __name__ == "__main__":
    main()
