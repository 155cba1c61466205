"""Benchmark the embedded llama.cpp backend: its overhead, and how much prompt it re-evaluates.

Not a test: it prints two ratios measured in this one run.

(a) Overhead. Tokens per second through ``LlamaCppBackend.complete`` divided
    by tokens per second calling llama-cpp-python's ``create_chat_completion``
    directly on the same loaded model, with the same messages, seed,
    temperature 0 and max_tokens. The two are called alternately so machine
    noise falls on both; the generated texts must be identical (same prompt
    tokens, same sampling). Target: >= 0.95.

(b) Prefix reuse. 17 judge-style calls over one ~3,000-token transcript: the
    transcript first (system message), a different ~150-token criterion
    question last. Ratio = prompt tokens llama.cpp actually evaluated / prompt
    tokens sent. "Evaluated" is read from llama.cpp's own performance counter
    (``n_p_eval``), and cross-checked against the backend's reported
    ``prompt_tokens - cached_tokens``. Naive re-evaluation gives 1.0.
    Target: <= 0.15.

Run:  python benchmarks/bench_backends.py            (about 1-3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import anyio
import llama_cpp

from actors.backends import Message
from actors.backends.llama_cpp_backend import LlamaCppBackend
from actors.run_config import LlamaCppConfig

OVERHEAD_TARGET = 0.95
REUSE_TARGET = 0.15

VERDICT = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["YES", "NO", "NA"]}, "reasoning": {"type": "string"}},
    "required": ["verdict", "reasoning"],
}

CRITERIA = [
    "asks open questions that invite the client to elaborate",
    "reflects the client's feelings accurately before moving on",
    "avoids giving advice before understanding the situation",
    "keeps the focus on the client's own goals",
    "notices and names ambivalence without judging it",
    "checks in about safety when the client mentions hopelessness",
    "summarises the client's words at natural turning points",
    "stays consistent with facts the client shared earlier",
    "does not repeat the same question across exchanges",
    "adapts its tone when the client becomes frustrated",
    "supports the client's autonomy in choosing next steps",
    "uses language that is warm but not saccharine",
    "avoids diagnosing or labelling the client",
    "handles a change of topic gracefully",
    "offers concrete, small next steps when the client asks for them",
    "acknowledges the limits of coaching where therapy is needed",
    "closes the session with a clear and kind summary",
]

CLIENT = [
    "I keep putting off the report and then I panic at midnight.",
    "My manager means well, but every message from her makes my chest tight.",
    "I told myself I'd go running this week and I didn't go once.",
    "Honestly I'm not sure coaching is for me, but my partner insisted.",
    "When I finally sit down to work, I check my phone every two minutes.",
    "Sundays are the worst; I start dreading Monday at about four o'clock.",
    "I used to love my job. Now I mostly feel tired and a bit numb.",
    "Part of me wants to quit, and part of me is scared of what that means.",
]
COACH = [
    "That sounds really draining. What happens in the hour before the panic starts?",
    "It makes sense your body reacts that way. What do her messages usually ask of you?",
    "Missing the runs seems to weigh on you. What got in the way this week?",
    "Thank you for being honest about that. What would make this worth your time?",
    "The phone seems to offer a quick escape. What are you escaping from, in that moment?",
    "That Sunday dread is so common. What do you notice in yourself around four?",
    "Losing that spark is hard. When did you last feel some of it, even briefly?",
    "Both parts make sense. What is the scared part trying to protect?",
]


def make_transcript(backend: LlamaCppBackend, target_tokens: int) -> str:
    rng = random.Random(7)
    lines: list[str] = []
    while True:
        turn = len(lines) // 2 + 1
        lines.append(f"[{turn}] client: {rng.choice(CLIENT)}")
        lines.append(f"[{turn}] coach: {rng.choice(COACH)}")
        text = "\n".join(lines)
        if backend.count_tokens([Message(role="system", content=text)]) >= target_tokens:
            return text


def make_question(index: int, criterion: str, backend: LlamaCppBackend, target_tokens: int) -> str:
    question = (
        f"Criterion {index + 1} of {len(CRITERIA)}: the coach {criterion}.\n"
        "Read the whole transcript above. Decide whether the coach's replies meet this criterion across the "
        "conversation, not just in one exchange. Answer YES if they do, NO if at least one reply clearly fails "
        "it, and NA only if the conversation never gave the coach a chance to show it. Give a short reason "
        "that points at the exchange numbers you relied on, and do not restate the criterion."
    )
    filler = " Be specific; quote no more than a few words; keep the reason to one or two sentences."
    while backend.count_tokens([Message(role="user", content=question)]) < target_tokens:
        question += filler
    return question


def prompt_evals(llm: llama_cpp.Llama) -> int:
    return llama_cpp.llama_perf_context(llm._ctx.ctx).n_p_eval


async def overhead(backend: LlamaCppBackend, reps: int, max_tokens: int) -> float:
    messages = [
        Message(role="system", content="You are a thoughtful coach who writes in full paragraphs."),
        Message(
            role="user",
            content="Describe, step by step, an evening routine that helps someone stop working and sleep well.",
        ),
    ]
    dicts = [{"role": m.role, "content": m.content} for m in messages]
    llm = backend.pool().primary

    def direct() -> tuple[str, int, float]:
        started = time.perf_counter()
        out = llm.create_chat_completion(
            dicts, max_tokens=max_tokens, temperature=0, seed=42, repeat_penalty=backend.config.repeat_penalty
        )
        return out["choices"][0]["message"]["content"], out["usage"]["completion_tokens"], time.perf_counter() - started

    async def through_backend() -> tuple[str, int, float]:
        started = time.perf_counter()
        reply = await backend.complete(messages, max_tokens=max_tokens, temperature=0, seed=42)
        return reply.text, reply.usage.completion_tokens, time.perf_counter() - started

    direct()  # warm-up: load, first decode, and put the prompt in the KV cache for both paths
    await through_backend()
    tokens = {"direct": 0, "backend": 0}
    seconds = {"direct": 0.0, "backend": 0.0}
    pair_ratios: list[float] = []
    for rep in range(reps):
        order = ("direct", "backend") if rep % 2 == 0 else ("backend", "direct")
        texts, pair = {}, {}
        for which in order:
            text, n, s = direct() if which == "direct" else await through_backend()
            texts[which], pair[which] = text, n / s
            tokens[which] += n
            seconds[which] += s
        if texts["direct"] != texts["backend"]:
            sys.exit("the backend and the direct call generated different text: the comparison would be unfair")
        pair_ratios.append(pair["backend"] / pair["direct"])
    direct_tps = tokens["direct"] / seconds["direct"]
    backend_tps = tokens["backend"] / seconds["backend"]
    ratio = backend_tps / direct_tps
    print(
        f"(a) overhead: {reps} alternating pairs, {tokens['backend'] // reps} tokens each; "
        f"backend {backend_tps:.1f} tok/s, direct create_chat_completion {direct_tps:.1f} tok/s"
    )
    print(
        f"    ratio backend/direct = {ratio:.3f}  (target >= {OVERHEAD_TARGET}: {'MET' if ratio >= OVERHEAD_TARGET else 'NOT MET'}); "
        f"per-pair ratios: median {statistics.median(pair_ratios):.3f}, min {min(pair_ratios):.3f}, max {max(pair_ratios):.3f}"
    )
    return ratio


async def prefix_reuse(
    backend: LlamaCppBackend, transcript_tokens: int, question_tokens: int, max_tokens: int
) -> float:
    transcript = make_transcript(backend, transcript_tokens)
    system = "You are a strict assessor of coaching transcripts. The transcript follows.\n\n" + transcript
    questions = [make_question(i, c, backend, question_tokens) for i, c in enumerate(CRITERIA)]
    llm = backend.pool().primary
    # Start cold: put an unrelated prompt in the context so the first call shares nothing.
    await backend.complete([Message(role="user", content="Unrelated warm-up.")], max_tokens=1)
    sent = reported = 0
    started = time.perf_counter()
    before = prompt_evals(llm)
    answers = {"ok": 0, "error": 0}
    for question in questions:
        reply = await backend.complete(
            [Message(role="system", content=system), Message(role="user", content=question)],
            schema=VERDICT,
            max_tokens=max_tokens,
            temperature=0,
            seed=1,
        )
        sent += reply.usage.prompt_tokens
        reported += reply.usage.prompt_tokens - reply.usage.cached_tokens
        answers["ok" if reply.data is not None else "error"] += 1
    evaluated = prompt_evals(llm) - before
    elapsed = time.perf_counter() - started
    ratio = evaluated / sent
    q_tokens = backend.count_tokens([Message(role="user", content=questions[0])])
    print(
        f"(b) prefix reuse: {len(questions)} judge calls, transcript {backend.count_tokens([Message(role='system', content=system)])} tokens, "
        f"question ~{q_tokens} tokens, {elapsed:.1f}s; answers: {answers['ok']} schema-valid, {answers['error']} ERROR"
    )
    print(
        f"    prompt tokens sent {sent:,}; evaluated by llama.cpp (n_p_eval) {evaluated:,}; reported by the backend {reported:,}"
    )
    print(
        f"    ratio evaluated/sent = {ratio:.3f}  (naive 1.0; target <= {REUSE_TARGET}: {'MET' if ratio <= REUSE_TARGET else 'NOT MET'})"
    )
    if reported != evaluated:
        print("    WARNING: the backend's cached-token accounting disagrees with llama.cpp's counter")
    return ratio


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="bundled model name or GGUF path")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--reps", type=int, default=6, help="alternating pairs for the overhead measurement")
    parser.add_argument("--max-tokens", type=int, default=128, help="generated tokens per overhead call")
    parser.add_argument("--transcript-tokens", type=int, default=3000)
    parser.add_argument("--question-tokens", type=int, default=150)
    parser.add_argument("--judge-max-tokens", type=int, default=64)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    args = parser.parse_args()

    backend = LlamaCppBackend("bench", LlamaCppConfig(model=args.model, n_ctx=8192, n_threads=args.n_threads, slots=1))
    await anyio.to_thread.run_sync(backend.pool)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start (timings are noisy when it exceeds the CPU count)"
    )
    print(
        f"model {args.model}, n_ctx {backend.context_window}, n_threads {backend.pool().primary.n_threads}, llama-cpp-python {llama_cpp.__version__}"
    )
    a = await overhead(backend, args.reps, args.max_tokens)
    b = await prefix_reuse(backend, args.transcript_tokens, args.question_tokens, args.judge_max_tokens)
    met = a >= OVERHEAD_TARGET and b <= REUSE_TARGET
    print(
        f"summary: overhead ratio {a:.3f} (>= {OVERHEAD_TARGET}), prefix-reuse ratio {b:.3f} (<= {REUSE_TARGET}): {'all targets met' if met else 'TARGET MISSED'}"
    )
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
