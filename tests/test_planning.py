"""Pure planning logic: persona sampling, length allocation, assessment windows, judge agreement."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.assessment.assessor import answer_schema, combine_windows, due_criteria, plan_windows, strictest
from actors.evaluation.agreement import agreement_by_criterion, cohen_kappa
from actors.generation.conversation import Turn, fit_recent, session_note
from actors.generation.personas import PersonaSeed, sample_persona_seed
from actors.generation.run_plan import allocate, plan_run
from actors.pack.loader import load_pack


@pytest.fixture(scope="module")
def pack():
    return load_pack()


def test_same_seed_same_persona(pack):
    a = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, 42)
    b = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, 42)
    c = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, 43)
    assert a == b and a != c
    assert PersonaSeed.from_dict(a.as_dict()) == a


def test_persona_shape_follows_the_taxonomy(pack):
    for seed in range(200):
        p = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, seed)
        assert 4 <= len(p.topic_seeds) <= 6
        assert 1 <= len(p.flaws) <= 3
        assert len({(t.topic, t.subtopic) for t in p.topic_seeds}) == len(p.topic_seeds)
        assert len({f.id for f in p.flaws}) == len(p.flaws)
        assert {t.complexity for t in p.topic_seeds} <= {"easy", "medium", "hard"}


def test_topic_and_edge_case_frequencies_follow_weights(pack):
    topics: Counter[str] = Counter()
    styles: Counter[str] = Counter()
    n = 3000
    for seed in range(n):
        p = sample_persona_seed(pack.input_taxonomy, pack.flaw_taxonomy, seed)
        topics.update(t.topic for t in p.topic_seeds)
        styles[p.style] += 1
    total = sum(topics.values())
    # Drawing without replacement flattens the distribution a little; weights still order it.
    assert 0.10 < topics["edge_cases"] / total < 0.20
    assert topics["anxiety"] > topics["self_worth"]
    assert 0.36 < styles["conversational"] / n < 0.44
    assert 0.03 < styles["analytical"] / n < 0.07


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (155, {"short": 31, "medium": 77, "long": 39, "very_long": 8}),
        (3, {"short": 1, "medium": 1, "long": 1, "very_long": 0}),
        (1, {"short": 0, "medium": 1, "long": 0, "very_long": 0}),
        (20, {"short": 4, "medium": 10, "long": 5, "very_long": 1}),
    ],
)
def test_length_allocation_matches_the_spec(n, expected):
    assert allocate(n, {"short": 0.2, "medium": 0.5, "long": 0.25, "very_long": 0.05}) == expected


def test_plan_is_reproducible(pack):
    a = plan_run(pack, "r", transcripts=10, seed=7, lengths={"short": 3})
    b = plan_run(pack, "r", transcripts=10, seed=7, lengths={"short": 3})
    assert a == b
    assert {t.target_exchanges for t in a.transcripts if t.length_class == "short"} == {3}
    with pytest.raises(ValueError):
        plan_run(pack, "r", transcripts=2, seed=1, mix={"huge": 1.0})


def test_session_gaps_are_seeded():
    notes = [session_note("t1", i) for i in range(1, 60)]
    assert notes == [session_note("t1", i) for i in range(1, 60)]
    assert "first message" in notes[0]
    assert any("new session" in n.lower() for n in notes) and any("same session" in n.lower() for n in notes)


def test_fit_recent_keeps_the_newest():
    turns = [Turn(f"u{i}", f"a{i}") for i in range(10)]
    kept, omitted = fit_recent(turns, lambda k: len(k) <= 3)
    assert [t.user for t in kept] == ["u7", "u8", "u9"] and omitted == 7


@pytest.mark.parametrize(
    ("sizes", "budget", "expected"),
    [
        ([10, 10, 10], 100, [(0, 3)]),
        ([10] * 10, 35, [(0, 3), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9), (7, 10)]),
        ([50, 10, 10, 10], 30, [(0, 1), (1, 4)]),
        ([40, 40], 30, [(0, 1), (1, 2)]),
    ],
)
def test_windows_cover_everything_with_overlap(sizes, budget, expected):
    assert plan_windows(sizes, budget) == expected


def test_windows_with_wider_budget_overlap_by_two():
    windows = plan_windows([10] * 20, 80)
    assert windows[0] == (0, 8) and windows[1] == (6, 14)
    assert windows[-1][1] == 20


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["YES", "NO", "YES"], "NO"),
        (["YES", "ERROR"], "ERROR"),
        (["NA", "YES"], "YES"),
        (["NA", "NA"], "NA"),
    ],
)
def test_window_combination(answers, expected):
    assert combine_windows(answers) == expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["YES", "NO"], "NO"),
        (["YES", "NA"], "NA"),
        (["ERROR", "YES"], "ERROR"),
        (["YES", "YES"], "YES"),
    ],
)
def test_strictest_judge_wins(answers, expected):
    assert strictest(answers) == expected


def test_na_offered_only_where_valid(pack):
    assert answer_schema(False)["properties"]["answer"]["enum"] == ["YES", "NO"]
    assert "NA" in answer_schema(True)["properties"]["answer"]["enum"]
    assert {c.id for c in due_criteria(pack.rubric, 1)} == {
        "CQ1",
        "CQ2",
        "CQ3",
        "CQ6",
        "CQ8",
        "CQ9",
        "CP2",
        "MT1",
        "MT2",
        "MT3",
        "MT6",
    }
    assert len(due_criteria(pack.rubric, 3)) == 17


def test_kappa():
    assert cohen_kappa(["YES", "NO", "YES", "NO"], ["YES", "NO", "YES", "NO"]) == pytest.approx(1.0)
    assert cohen_kappa(["YES", "NO", "YES", "NO"], ["NO", "YES", "NO", "YES"]) == pytest.approx(-1.0)
    # Textbook example: 20 YES/YES, 5 YES/NO, 10 NO/YES, 15 NO/NO -> kappa 0.4
    a = ["YES"] * 25 + ["NO"] * 25
    b = ["YES"] * 20 + ["NO"] * 5 + ["YES"] * 10 + ["NO"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([], []) is None
    stats = agreement_by_criterion({"CQ1": {"j1": ["YES", "NO"], "j2": ["YES", "YES"]}})
    assert stats["CQ1"]["agreement"] == 0.5 and stats["CQ1"]["items"] == 2
