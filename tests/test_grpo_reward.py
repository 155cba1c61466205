"""The rubric reward for GRPO, with a scripted judge: which criteria, how answers become a reward, the cache."""

from __future__ import annotations

import pytest

from actors.backends.errors import BackendError
from actors.training.rubric_reward import (
    RubricReward,
    judged_text,
    reward_criteria,
    reward_score,
    single_reply_criteria,
    split_prompt,
)
from state.errors import CoachError

PROMPT = [
    {"role": "system", "content": "Be a coach."},
    {"role": "user", "content": "I sleep badly."},
    {"role": "assistant", "content": "Tell me more."},
    {"role": "user", "content": "Work is loud and my sister calls at night."},
]


def test_the_reward_asks_the_criteria_the_rubric_judges_on_one_exchange(pack):
    ids = [c.id for c in single_reply_criteria(pack.rubric)]
    assert ids == ["CQ1", "CQ2", "CQ3", "CQ6", "CQ8", "CQ9", "CP2", "MT1", "MT2", "MT3", "MT6"]
    # the ones that need several replies are left out, and asking for one is a clear mistake
    assert not {"CP4", "CP5", "CP6", "MT4", "MT5", "MT7"} & set(ids)
    with pytest.raises(CoachError, match=r"MT4 \(needs 3 exchanges\) cannot be judged on one reply"):
        reward_criteria(pack.rubric, ["MT1", "MT4"])
    # narrowed for cost, the safety gates stay
    assert [c.id for c in reward_criteria(pack.rubric, ["MT1"])] == ["CQ8", "CQ9", "MT1"]


def test_a_failed_safety_gate_scores_zero_and_the_rest_is_a_weighted_share(pack):
    assert reward_score(pack.rubric, {"CQ8": "YES", "CQ9": "NA", "MT1": "YES"}) == (1.0, False)
    assert reward_score(pack.rubric, {"CQ8": "NO", "CQ9": "NA", "MT1": "YES"}) == (0.0, True)
    assert reward_score(pack.rubric, {"CQ8": "ERROR", "MT1": "YES"}) == (0.0, True)  # no verdict is no pass
    half, _ = reward_score(pack.rubric, {"CQ8": "YES", "MT1": "YES", "MT2": "NO"})
    assert half == pytest.approx(0.5)
    mixed, _ = reward_score(pack.rubric, {"CQ1": "YES", "MT1": "NO"})  # comprehension 0.15 passes, multi_topic 0.30 not
    assert mixed == pytest.approx(0.15 / 0.45)


def test_the_judge_reads_the_reply_with_a_little_context_and_each_reply_is_judged_once(pack):
    earlier, user = split_prompt(PROMPT)
    text, shown = judged_text(earlier, user, "Noise and family, both at night.")
    assert shown == 2 and "### Exchange 2 (judge this reply)" in text and "(context only: not judged)" in text
    assert text.index("Tell me more.") < text.index("Noise and family")

    calls, families = [], []

    def judge(requests):
        out = []
        for _name, prompt, _schema, family in requests:
            calls.append(prompt)
            families.append(family)
            unsafe = "pills" in prompt and "Avoids harmful patterns" in prompt
            out.append(("NO" if unsafe else "YES", 1000, 20))
        return out

    reward = RubricReward(pack, judges=["judge"], call=judge, criteria=["MT1"])
    completions = [
        [{"role": "assistant", "content": "Let's look at the noise and your sister."}],
        [{"role": "assistant", "content": "Take some pills and forget it."}],
        [{"role": "assistant", "content": "Let's look at the noise and your sister."}],  # the same reply again
        [{"role": "assistant", "content": "   "}],
    ]
    assert reward([PROMPT] * 4, completions) == [1.0, 0.0, 1.0, 0.0]
    assert len(calls) == 6  # two replies judged on CQ8, CQ9, MT1; the repeat came from the cache, the empty one free
    # A reply's criteria share its judged text: one prefix family each, so a local judge keeps them on one context.
    assert len(set(families[:3])) == len(set(families[3:])) == 1 and families[0] != families[3]
    assert reward.stats.cached == 1 and reward.stats.safety_zeroes == 1
    assert reward.stats.prompt_tokens == 6000 and reward.stats.calls == 6
    assert reward([PROMPT], [completions[1]]) == [0.0] and len(calls) == 6  # cached across calls too

    def broken(requests):
        return [BackendError("judge", "down") for _ in requests]

    # a judge that does not answer gives no verdict: ERROR on a safety gate, so the reward is 0
    assert RubricReward(pack, judges=["judge"], call=broken, criteria=["MT1"]).score(PROMPT, "Fine reply.") == 0.0
