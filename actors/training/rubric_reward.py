"""The rubric as a reward for GRPO: the judge scores one sampled reply on the criteria one reply can be judged on.

Which criteria. The rubric says, per criterion, from how many exchanges it is
assessed (`min_turns`). A sampled reply is a single exchange, so the reward
asks exactly the criteria with `min_turns` 1 (`single_reply_criteria`) — for
the therapy pack: CQ1 accurate understanding, CQ2 ambiguity, CQ3 emotional
attunement, CQ6 empowers the user, CQ8 avoids harmful patterns and CQ9
handles crisis signals (the safety gates), CP2 natural and warm, MT1 topic
coverage, MT2 depth, MT3 priority and MT6 segmentation. The ones that need a
history of replies (formulaic openers, question endings, traction, history
use, thread and coaching-loop continuity: `min_turns` 3) cannot be judged on
one reply and are left out. `--reward-criteria` may narrow the set (cost);
the safety gates among the single-reply criteria are always asked.

How. Each criterion is one judge call with the pack's assessor prompt, as in
a pipeline assessment; the "conversation" shown is the exchange being
answered, preceded by at most `CONTEXT_EXCHANGES` earlier exchanges marked as
context only. The answers are scored like a transcript's (YES passes, NA
where the rubric allows it, NO and ERROR fail; several judges: strictest
answer): the reward is the weighted mean over the categories the asked
criteria belong to, in [0, 1]; any failing safety gate makes it 0.

Cost. Rewards are cached by (context, reply): GRPO samples several
completions per prompt, and identical ones (frequent with short replies, and
again after a resume) are judged once. `calls` and the token counts say what
the judging cost, for the cost-per-step figures in the docs.

The judge runs on the run config's router in a thread of its own (an anyio
blocking portal), so TRL's synchronous reward call can wait for it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from state.errors import CoachError

from ..assessment.assessor import answer_schema, ask_judge, judge_prompt, render_exchange, strictest
from ..assessment.scoring import normalize_answer
from ..backends.errors import BackendError
from ..generation.conversation import Turn
from ..pack.models import Criterion, Rubric

CONTEXT_EXCHANGES = 2
"""Earlier exchanges shown to the judge before the one it scores: enough to tell a reply that ignores
what was just said, few enough to keep every call short."""


def single_reply_criteria(rubric: Rubric) -> list[Criterion]:
    """The criteria the rubric assesses on a single exchange (`min_turns` 1)."""
    return [c for c in rubric.criteria if c.min_turns <= 1]


def reward_criteria(rubric: Rubric, only: Sequence[str] = ()) -> list[Criterion]:
    """The criteria the reward asks: the single-reply ones, narrowed to `only` (plus the safety gates) if given."""
    single = single_reply_criteria(rubric)
    if not only:
        return single
    ids = {c.id for c in single}
    unknown = [cid for cid in only if cid not in ids]
    if unknown:
        others = {c.id for c in rubric.criteria} - ids
        why = [
            f"{cid} (needs {rubric.criterion(cid).min_turns} exchanges)" if cid in others else cid for cid in unknown
        ]
        raise CoachError(
            f"--reward-criteria: {', '.join(why)} cannot be judged on one reply; choose among {', '.join(sorted(ids))}"
        )
    keep = set(only) | (set(rubric.safety_gates) & ids)
    return [c for c in single if c.id in keep]


def reward_score(rubric: Rubric, answers: dict[str, str]) -> tuple[float, bool]:
    """(reward in [0, 1], safety gate failed) of one reply's answers: 0 when a safety gate fails."""
    gates, na_invalid = set(rubric.safety_gates), set(rubric.na_invalid)
    tallies: dict[str, list[int]] = {}
    safety_failed = False
    for cid, raw in answers.items():
        answer = normalize_answer(raw)
        ok = answer == "YES" or (answer == "NA" and cid not in na_invalid)
        if cid in gates and not ok:
            safety_failed = True
        category = rubric.criterion(cid).category
        if category is not None:
            tally = tallies.setdefault(category, [0, 0])
            tally[0] += ok
            tally[1] += 1
    if safety_failed:
        return 0.0, True
    weights = {name: rubric.categories[name].weight for name in tallies}
    total = sum(weights.values())
    if not total:  # only safety gates asked, and they passed
        return 1.0, False
    return sum(weights[n] * passed / counted for n, (passed, counted) in tallies.items()) / total, False


def split_prompt(prompt: Sequence[dict]) -> tuple[list[Turn], str]:
    """(earlier exchanges, the user message being answered) of a conversational prompt."""
    turns = [m for m in prompt if m["role"] != "system"]
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("a GRPO prompt must end with a user message")
    earlier = [Turn(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2)]
    return earlier, turns[-1]["content"]


def judged_text(earlier: Sequence[Turn], user: str, reply: str, context: int = CONTEXT_EXCHANGES) -> tuple[str, int]:
    """What the judge reads: up to `context` earlier exchanges marked as context, then the scored exchange."""
    shown = list(earlier)[-context:] if context else []
    first = len(earlier) - len(shown) + 1
    parts = [render_exchange(first + i, t, flag="(context only: not judged)") for i, t in enumerate(shown)]
    number = len(earlier) + 1
    parts.append(render_exchange(number, Turn(user, reply), flag="(judge this reply)"))
    note = (
        f"(Judge only the assistant's reply in exchange {number}; earlier exchanges are shown as context.)\n\n"
        if shown
        else ""
    )
    return note + "\n".join(parts), len(shown) + 1


def cache_key(prompt: Sequence[dict], reply: str) -> str:
    body = json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)
    return hashlib.sha256(f"{body}\0{reply}".encode()).hexdigest()


def completion_text(completion) -> str:
    """TRL hands conversational completions as a list of messages, standard ones as text."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if isinstance(m, dict))


@dataclass
class RewardStats:
    judged: int = 0  # replies judged
    cached: int = 0  # replies whose reward came from the cache
    calls: int = 0  # judge calls
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    safety_zeroes: int = 0
    rewards: list[float] = field(default_factory=list)


class RubricReward:
    """TRL reward function: `reward(prompts, completions, **kwargs) -> list[float]`, judged on the rubric.

    `call(requests)` answers a batch of judge calls, each (judge name, prompt, schema, prefix family), with
    (answer, prompt tokens, completion tokens) or the BackendError it met; `judges` names the judge
    backends. Tests hand a scripted one; `from_run_config` builds the real one on its own loop.
    """

    __name__ = "rubric_reward"  # TRL logs rewards under the function's name

    def __init__(self, pack, *, judges: Sequence[str], call: Callable, criteria: Sequence[str] = ()) -> None:
        self.pack = pack
        self.judges = list(judges)
        self.criteria = reward_criteria(pack.rubric, criteria)
        # [(judge name, prompt text, schema, family)] -> [(answer, prompt tokens, completion tokens) or BackendError]
        # (a family names the calls sharing one reply's judged text: `cache_hint`)
        self._call = call
        self.cache: dict[str, float] = {}
        self.stats = RewardStats()
        self._lock = threading.Lock()
        self._close: Callable[[], None] = lambda: None

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        return self.score_many([(p, completion_text(c)) for p, c in zip(prompts, completions, strict=True)])

    def score(self, prompt: Sequence[dict], reply: str) -> float:
        return self.score_many([(prompt, reply)])[0]

    def score_many(self, items: Sequence[tuple[Sequence[dict], str]]) -> list[float]:
        """Rewards of (prompt, reply) items; every judge call of the uncached ones is handed over at once,
        so a hosted judge answers them concurrently (within the router's limits)."""
        keys = [cache_key(p, r) for p, r in items]
        todo: dict[str, tuple[Sequence[dict], str]] = {}
        with self._lock:
            for key, item in zip(keys, items, strict=True):
                if key in self.cache or key in todo:
                    self.stats.cached += 1
                elif not item[1].strip():
                    self.cache[key] = 0.0  # nothing to judge: the lowest reward, without a call
                else:
                    todo[key] = item
        requests: list[tuple[str, str, dict, str]] = []
        slots: list[tuple[str, str]] = []  # (item key, criterion id) of each request
        for key, (prompt, reply) in todo.items():
            earlier, user = split_prompt(prompt)
            text, shown = judged_text(earlier, user, reply)
            for c in self.criteria:
                schema = answer_schema(c.id not in self.pack.rubric.na_invalid)
                for judge in self.judges:
                    family = f"reward:{judge}:{key}"  # this reply's criteria stay on one llama.cpp context
                    requests.append((judge, judge_prompt(self.pack, c, text, shown), schema, family))
                    slots.append((key, c.id))
        verdicts: dict[str, dict[str, list[str]]] = {key: {} for key in todo}
        for (key, cid), outcome in zip(slots, self._ask_all(requests), strict=True):
            verdicts[key].setdefault(cid, []).append(outcome)
        with self._lock:
            for key, answers in verdicts.items():
                value, safety = reward_score(self.pack.rubric, {cid: strictest(v) for cid, v in answers.items()})
                self.cache[key] = value
                self.stats.judged += 1
                self.stats.safety_zeroes += safety
                self.stats.rewards.append(value)
            return [self.cache[key] for key in keys]

    def _ask_all(self, requests: list[tuple[str, str, dict, str]]) -> list[str]:
        """Each request's answer (ERROR for a failed call); token usage goes to `stats`."""
        self.stats.calls += len(requests)
        answers = []
        for outcome in self._call(requests) if requests else []:
            if isinstance(outcome, BackendError):
                self.stats.failed_calls += 1
                answers.append("ERROR")
                continue
            answer, prompt_tokens, completion_tokens = outcome
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            answers.append(normalize_answer(answer))
        return answers

    def close(self) -> None:
        self._close()

    @classmethod
    def from_run_config(cls, pack, run_config_path=None, *, criteria: Sequence[str] = ()) -> RubricReward:
        """The reward on the run config's judge role (the embedded judge by default), on a loop of its own."""
        from anyio.from_thread import start_blocking_portal

        from ..backends.router import ModelRouter
        from ..run_config import load_run_config

        config = load_run_config(run_config_path)
        portal_cm = start_blocking_portal()
        portal = portal_cm.__enter__()
        try:
            router = portal.call(_make_router, ModelRouter, config)
            judges = [b.name for b in router.backends_for("judge")]
        except BaseException:
            portal_cm.__exit__(None, None, None)
            raise

        async def ask(judge: str, prompt: str, schema: dict, family: str) -> tuple[str, int, int]:
            reply = await ask_judge(router, judge, prompt, schema, seed=0, family=family)
            answer = reply.data.get("answer") if reply.ok and reply.data else "ERROR"
            return str(answer), reply.usage.prompt_tokens, reply.usage.completion_tokens

        async def ask_all(requests: list[tuple[str, str, dict, str]]) -> list:
            import anyio

            out: list = [None] * len(requests)

            async def one(i: int, judge: str, prompt: str, schema: dict, family: str) -> None:
                try:
                    out[i] = await ask(judge, prompt, schema, family)
                except BackendError as err:
                    out[i] = err

            async with anyio.create_task_group() as tg:  # the router holds each backend to its concurrency
                for i, request in enumerate(requests):
                    tg.start_soon(one, i, *request)
            return out

        reward = cls(pack, judges=judges, call=lambda requests: portal.call(ask_all, requests), criteria=criteria)

        def close() -> None:
            try:
                portal.call(router.aclose)
            finally:
                portal_cm.__exit__(None, None, None)

        reward._close = close
        return reward


async def _make_router(router_class, config):
    return router_class.from_config(config)
