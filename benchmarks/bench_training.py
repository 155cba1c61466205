"""What does a DPO step cost next to an SFT step? The tiny preset on the CPU, the same conversations.

Each conversation is one preference pair (a system prompt, a user message, a good and a worse reply); SFT
trains on the prompt with the good reply (`messages`), DPO on the pair. Both go through `train_blocking`,
the path `coach train` takes, with the tiny preset's recipe (batch 1, plain LoRA, fp32). A DPO step runs
the policy on both replies and the reference (the base, adapter switched off) on both, so it should cost
somewhat more than twice an SFT step; the printed ratio is the measurement.

Step time: from the trainer's progress events, the time between the first logged step and the last divided
by the steps between them (the first step pays for warm-up and is left out). Runs alternate SFT and DPO
`--repeats` times and the median is kept, because a shared machine's load moves under a benchmark.

Usage (about 2–4 minutes on an idle two-core machine):

    python benchmarks/bench_training.py [--steps 6] [--repeats 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYSTEM = "You are a warm, practical self-care coach."
CONVERSATIONS = [
    (
        "I can't sleep before big meetings.",
        "That sounds draining. What goes through your mind at night?",
        "Take a pill.",
    ),
    ("My sister keeps asking for money.", "It makes sense you feel torn. What would a fair limit be?", "Cut her off."),
    ("I snapped at my partner again.", "Thank you for saying it. What happened just before?", "You have anger issues."),
    ("I want to walk in the mornings.", "A small start counts. Which morning could you try?", "Walking is boring."),
    (
        "Work emails follow me home.",
        "That blurs the line between work and rest. When do they arrive?",
        "Quit your job.",
    ),
    ("I feel behind my friends.", "Comparing can sting. Which part feels most behind?", "Everyone feels that."),
]


def write_data(folder: Path) -> tuple[Path, Path]:
    sft, dpo = folder / "sft.jsonl", folder / "pairs.jsonl"
    with open(sft, "w") as s, open(dpo, "w") as d:
        for i, (user, good, bad) in enumerate(CONVERSATIONS):
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            s.write(json.dumps({"messages": [*prompt, {"role": "assistant", "content": good}]}) + "\n")
            pair = {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
                "transcript_id": f"t{i}",
            }
            d.write(json.dumps(pair) + "\n")
    return sft, dpo


def step_time(method: str, data: Path, steps: int, root: Path) -> float:
    from actors.training.recipe import TrainRequest, plan_training
    from actors.training.trainer import train_blocking
    from state.store import Store

    workspace = Path(tempfile.mkdtemp(dir=root))
    store = Store.for_workspace(workspace)
    elapsed: dict[int, float] = {}

    def emit(kind: str, **payload) -> None:
        if kind == "TrainingProgress":
            elapsed[payload["step"]] = payload["elapsed_s"]

    request = TrainRequest(data=data, preset="tiny", steps=steps, save_steps=steps, method=method, val_fraction=0)
    train_blocking(plan_training(request, cuda=False), store=store, runs_root=workspace / "train", emit=emit)
    store.close()
    first, last = min(elapsed), max(elapsed)
    return (elapsed[last] - elapsed[first]) / (last - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run (at least 3)")
    parser.add_argument("--repeats", type=int, default=1, help="SFT/DPO runs, alternating; the median is kept")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.steps < 3:
        parser.error("--steps must be at least 3 (the first step is warm-up)")

    from actors.training.models import calm_cpu_threads

    calm_cpu_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sft_data, dpo_data = write_data(root)
        times: dict[str, list[float]] = {"sft": [], "dpo": []}
        for _ in range(args.repeats):
            for method, data in (("sft", sft_data), ("dpo", dpo_data)):
                times[method].append(step_time(method, data, args.steps, root))
                print(f"{method}: {times[method][-1]:.2f} s/step", flush=True)
    sft, dpo = statistics.median(times["sft"]), statistics.median(times["dpo"])
    print(f"\ntiny preset, CPU, {len(CONVERSATIONS)} conversations, batch 1, {args.steps} steps per run")
    print(f"SFT step {sft:.2f} s, DPO step {dpo:.2f} s: DPO / SFT = {dpo / sft:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"sft_s_per_step": sft, "dpo_s_per_step": dpo, "ratio": dpo / sft}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
