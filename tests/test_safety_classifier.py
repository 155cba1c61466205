"""The learned layer's shape: a head per category, and a threshold held to the whole net's budget.

Training on the full corpus is the slow test in test_safety_cli.py; these use small corpora.
"""

from __future__ import annotations

import numpy as np
import pytest

from actors.safety import load_safety_net
from actors.safety.classifier import choose_threshold, train

WISH = [
    "i want to die",
    "i wish i could just disappear forever",
    "i dont want to be alive anymore",
    "i keep wishing i would not wake up",
    "everyone would be better off without me",
    "i just want to stop existing",
]
THREAT = [
    "my husband said he will kill me if i leave",
    "he hit me again and took my phone",
    "my dad threatens me with his belt",
    "my ex is outside my door with a knife",
    "he choked me last night",
    "she said she would hurt me if i tell anyone",
]
BENIGN = [
    "this deadline is killing me",
    "i could murder a pizza",
    "the film about a killer was great",
    "my phone died again",
    "i love my cat",
    "work was long but fine",
    "we watched a documentary about wolves",
    "my husband made dinner tonight",
]


def test_each_category_has_its_own_head_and_names_it():
    texts = WISH + THREAT + BENIGN
    labels = ["passive_wish"] * len(WISH) + ["danger_from_others"] * len(THREAT) + ["none"] * len(BENIGN)
    model, _ = train(texts, labels, ["danger_from_others", "passive_wish"], max_false_alarm=0.2, folds=3, seed=0)
    assert model.categories == ("danger_from_others", "passive_wish")
    assert model.heads.shape[1] == 2
    for text, category in [
        ("i wish i could disappear", "passive_wish"),
        ("my ex said he will kill me", "danger_from_others"),
    ]:
        logits = model.logits(text)
        assert model.category(text) == category
        assert model.score(text) == pytest.approx(1 / (1 + np.exp(-logits.max())), abs=1e-6)
    assert model.score("i wish i could disappear") > model.score("i love my cat")


def test_threshold_counts_what_the_other_layers_flag_and_where_the_classifier_may_speak():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    # The classifier alone may flag two of four benign messages: the two highest.
    assert choose_threshold(scores, 0.5) == pytest.approx(0.7001)
    # The lexicon already flags one of them: one flag is left for the classifier.
    anyway = np.array([False, False, False, True])
    assert choose_threshold(scores, 0.5, anyway) == pytest.approx(0.8001)
    # Where the net does not let the classifier speak (a negated or framed message), its score
    # costs nothing: the highest-scoring message is silenced, so the threshold can go lower.
    speaks = np.array([False, True, True, True])
    assert choose_threshold(scores, 0.5, anyway, speaks) == pytest.approx(0.7001)
    # The other layers alone are over budget: the classifier gets the highest threshold there is.
    assert choose_threshold(scores, 0.2, np.array([True, True, False, False])) == 0.99


def test_where_the_net_silences_the_classifier_its_framed_bar_still_counts():
    texts = WISH + THREAT + BENIGN
    labels = ["passive_wish"] * len(WISH) + ["danger_from_others"] * len(THREAT) + ["none"] * len(BENIGN)
    categories = ["danger_from_others", "passive_wish"]
    nowhere = [False] * len(texts)
    common = dict(max_false_alarm=0.2, folds=3, seed=0, may_speak=nowhere)
    _, silent = train(texts, labels, categories, **common)
    _, denied = train(texts, labels, categories, framed=nowhere, framed_threshold=0.5, **common)
    _, barred = train(texts, labels, categories, framed=[True] * len(texts), framed_threshold=0.5, **common)
    assert silent.cv_recall == 0 and denied.cv_recall == 0
    assert barred.cv_recall > 0


def test_the_net_says_what_the_other_layers_do_without_the_classifier():
    net = load_safety_net(None)
    assert net.without_classifier("i am going to kill myself tonight") == (True, "reads")
    # negated: the classifier is not asked
    assert net.without_classifier("i would never kill myself, i love my kids") == (False, "denied")
    assert net.without_classifier("my week was long and the bus was late") == (False, "reads")
    # framed as a film: the classifier speaks only when near-certain
    assert net.without_classifier("the film where the hero kills himself was sad") == (False, "framed")


def test_benign_texts_outside_the_budget_are_learnt_from_but_not_counted():
    """Easy benign texts (short chat turns) would lower the threshold by their number alone."""
    easy = ["ok thanks", "see you tomorrow", "sounds good", "will do", "gotta go now", "good night all"] * 3
    texts = WISH + THREAT + BENIGN + easy
    labels = ["passive_wish"] * len(WISH) + ["danger_from_others"] * len(THREAT) + ["none"] * (len(BENIGN) + len(easy))
    categories = ["danger_from_others", "passive_wish"]
    counted, _ = train(texts, labels, categories, max_false_alarm=0.2, folds=3, seed=0)
    in_budget = [True] * (len(texts) - len(easy)) + [False] * len(easy)
    outside, report = train(texts, labels, categories, max_false_alarm=0.2, folds=3, seed=0, in_budget=in_budget)
    assert outside.threshold > counted.threshold
    # the same fit: only the threshold differs
    assert outside.score("i want to die") == pytest.approx(counted.score("i want to die"))
    assert report.cv_false_alarm <= 0.2
