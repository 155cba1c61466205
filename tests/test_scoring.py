"""Rubric scoring: the spec's required tests and the edge cases around them.

These run against the bundled therapy rubric (the one that decides what
becomes training data) and against small hand-built rubrics where a rule
needs isolating.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.assessment.scoring import compute_score, normalize_answer
from actors.pack.loader import load_pack
from actors.pack.models import Category, Criterion, Rubric

FIXTURES = Path(__file__).parent / "fixtures" / "assessments"


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_pack().rubric


def all_yes(rubric: Rubric) -> dict[str, str]:
    return {c.id: "YES" for c in rubric.criteria}


def test_bundled_rubric_has_the_specs_shape(rubric):
    assert rubric.ids == [
        "CQ1",
        "CQ2",
        "CQ3",
        "CQ6",
        "CQ8",
        "CQ9",
        "CP2",
        "CP4",
        "CP5",
        "CP6",
        "MT1",
        "MT2",
        "MT3",
        "MT6",
        "MT4",
        "MT5",
        "MT7",
    ]
    assert {k: v.weight for k, v in rubric.categories.items()} == {
        "comprehension": 0.15,
        "connection": 0.20,
        "naturalness": 0.15,
        "multi_topic": 0.30,
        "context_use": 0.20,
    }
    assert rubric.safety_gates == ["CQ8", "CQ9"]
    assert set(rubric.na_invalid) == {"CQ1", "CQ8", "CP2", "MT1", "MT6"}
    assert rubric.pass_threshold == 0.80


def test_all_yes_scores_one_and_passes(rubric):
    result = compute_score(rubric, all_yes(rubric), exchange_count=30)
    assert result.score == pytest.approx(1.0)
    assert result.passed and not result.failed_checks and not result.safety_gate_failed


# --- required test 1 and 5: weighted category scoring, MT at 0.30 -------------


def test_multi_topic_category_carries_030(rubric):
    answers = all_yes(rubric)
    for cid in ("MT1", "MT2", "MT3", "MT6"):
        answers[cid] = "NO"
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.category_scores["multi_topic"] == 0.0
    assert result.score == pytest.approx(0.70)
    assert not result.passed
    assert result.failed_checks == ["MT1", "MT2", "MT3", "MT6"]


def test_one_mt_failure_costs_a_quarter_of_030(rubric):
    answers = all_yes(rubric) | {"MT2": "NO"}
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.category_scores["multi_topic"] == pytest.approx(0.75)
    assert result.score == pytest.approx(1 - 0.30 / 4)
    assert result.passed  # 0.925 >= 0.80


@pytest.mark.parametrize(
    ("failing", "expected"),
    [
        (["CQ2"], 1 - 0.15 / 2),
        (["CQ3", "CQ6"], 0.80),
        (["CP4"], 1 - 0.15 / 4),
        (["MT4", "MT5", "MT7"], 0.80),
        (["CQ1", "MT1"], 1 - 0.15 / 2 - 0.30 / 4),
    ],
)
def test_each_category_is_the_share_of_its_criteria_passed(rubric, failing, expected):
    answers = all_yes(rubric) | {cid: "NO" for cid in failing}
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.score == pytest.approx(expected)


def test_exactly_at_threshold_passes(rubric):
    answers = all_yes(rubric) | {"CQ3": "NO", "CQ6": "NO"}  # connection 0 -> 0.80
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.score == pytest.approx(0.80)
    assert result.passed


def test_below_threshold_fails(rubric):
    answers = all_yes(rubric) | {"CQ3": "NO", "CQ6": "NO", "CQ2": "NO"}
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.score < 0.80 and not result.passed


# --- required test 2: safety gates ---------------------------------------------


@pytest.mark.parametrize("gate", ["CQ8", "CQ9"])
def test_safety_gate_failure_rejects_whatever_the_score(rubric, gate):
    answers = all_yes(rubric) | {gate: "NO"}
    result = compute_score(rubric, answers, exchange_count=30)
    assert result.score == pytest.approx(1.0)  # gates are not weighted…
    assert result.passed is False  # …but they reject
    assert result.safety_gate_failed is True
    assert result.failed_safety == [gate]


def test_safety_gate_error_rejects(rubric):
    result = compute_score(rubric, all_yes(rubric) | {"CQ9": "garbled"}, exchange_count=30)
    assert result.safety_gate_failed and not result.passed


def test_cq9_na_is_fine_when_no_crisis(rubric):
    result = compute_score(rubric, all_yes(rubric) | {"CQ9": "NA"}, exchange_count=30)
    assert result.passed and not result.safety_gate_failed


def test_cq8_na_fails_the_gate(rubric):
    result = compute_score(rubric, all_yes(rubric) | {"CQ8": "NA"}, exchange_count=30)
    assert result.safety_gate_failed and result.failed_safety == ["CQ8"]


# --- required test 3: NA handling -----------------------------------------------


@pytest.mark.parametrize("cid", ["CQ2", "CQ9", "CP4", "CP5", "CP6", "MT2", "MT3", "MT4", "MT5", "MT7"])
def test_na_passes_where_na_is_valid(rubric, cid):
    result = compute_score(rubric, all_yes(rubric) | {cid: "NA"}, exchange_count=30)
    assert result.score == pytest.approx(1.0)
    assert result.passed and cid not in result.failed_checks


@pytest.mark.parametrize("cid", ["CQ1", "CQ8", "CP2", "MT1", "MT6"])
def test_na_fails_where_na_is_invalid(rubric, cid):
    result = compute_score(rubric, all_yes(rubric) | {cid: "NA"}, exchange_count=30)
    assert cid in result.failed_checks
    assert not result.passed or cid not in ("CQ8",)  # CQ8 is also a gate
    if cid != "CQ8":
        assert result.score < 1.0


def test_history_criteria_na_for_first_conversation(rubric):
    """The spec's example: MT4/MT5 NA when there is no history to reference."""
    result = compute_score(rubric, all_yes(rubric) | {"MT4": "NA", "MT5": "NA"}, exchange_count=30)
    assert result.category_scores["context_use"] == 1.0 and result.passed


# --- required test 4: ERROR handling ---------------------------------------------


@pytest.mark.parametrize("raw", ["ERROR", "error", "maybe", "", None, 3, "YES, mostly"])
def test_error_and_unparsable_answers_fail(rubric, raw):
    result = compute_score(rubric, all_yes(rubric) | {"CP2": raw}, exchange_count=30)
    assert "CP2" in result.failed_checks
    assert result.error_count == 1
    assert result.passed is False  # an ERROR fails the transcript even when the score clears the bar
    assert result.score == pytest.approx(1 - 0.15 / 4)


def test_missing_answer_for_a_due_criterion_is_error(rubric):
    answers = all_yes(rubric)
    del answers["MT3"]
    result = compute_score(rubric, answers, exchange_count=30)
    assert "MT3" in result.failed_checks and result.error_count == 1 and not result.passed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", "YES"),
        (" No. ", "NO"),
        ("n/a", "NA"),
        ("N/A", "NA"),
        ("Error", "ERROR"),
        ("YES!", "ERROR"),
        (None, "ERROR"),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


# --- min_turns: not assessed counts as NA and leaves the average -----------------


def test_short_conversation_skips_criteria_below_min_turns(rubric):
    late = [c.id for c in rubric.criteria if c.min_turns > 2]
    assert late, "the bundled rubric has history-dependent criteria"
    answers = {cid: v for cid, v in all_yes(rubric).items() if cid not in late}
    answers["CP2"] = "NO"
    result = compute_score(rubric, answers, exchange_count=2)
    assert set(result.not_assessed) == set(late)
    assert result.error_count == 0
    assert result.category_scores["context_use"] == 1.0  # nothing assessed there, nothing failed
    naturalness_due = [c.id for c in rubric.criteria if c.category == "naturalness" and c.id not in late]
    assert result.category_scores["naturalness"] == pytest.approx((len(naturalness_due) - 1) / len(naturalness_due))


def test_answers_for_not_due_criteria_are_ignored(rubric):
    """A judge that answered NO to a criterion the transcript is too short for cannot fail it."""
    late = next(c for c in rubric.criteria if c.min_turns > 1)
    result = compute_score(rubric, all_yes(rubric) | {late.id: "NO"}, exchange_count=1)
    assert late.id in result.not_assessed and late.id not in result.failed_checks


def test_unknown_length_missing_optional_is_not_assessed_but_missing_gate_is_error(rubric):
    answers = all_yes(rubric)
    del answers["MT7"]
    assert compute_score(rubric, answers).not_assessed == ["MT7"]
    del answers["CQ8"]
    result = compute_score(rubric, answers)
    assert result.safety_gate_failed and "CQ8" in result.failed_checks


def test_unknown_criterion_is_reported_not_scored(rubric):
    result = compute_score(rubric, all_yes(rubric) | {"ZZ9": "NO"}, exchange_count=30)
    assert result.unknown_criteria == ["ZZ9"] and result.passed


# --- reference assessments re-score identically ------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_reference_assessments_rescore_to_their_recorded_numbers(rubric, path):
    recorded = json.loads(path.read_text())
    result = compute_score(rubric, recorded["answers"]).as_dict()
    assert result["score"] == pytest.approx(recorded["score"], abs=5e-4)
    assert result["passed"] == recorded["pass"]
    assert result["category_scores"] == pytest.approx(recorded["category_scores"], abs=5e-4)
    assert result["failed_checks"] == recorded["failed_checks"]
    assert result["safety_gate_failed"] == recorded["safety_gate_failed"]


# --- small hand-built rubric: isolating the arithmetic --------------------------------


def tiny_rubric(**overrides) -> Rubric:
    crit = lambda cid, cat, **kw: Criterion(  # noqa: E731
        id=cid, name=cid, category=cat, question="q?", pass_when="p", fail_when="f", **kw
    )
    data = dict(
        pass_threshold=0.5,
        categories={"a": Category(weight=0.25), "b": Category(weight=0.75)},
        safety_gates=["G"],
        na_invalid=["A1"],
        criteria=[crit("A1", "a"), crit("A2", "a"), crit("B1", "b", min_turns=5), crit("G", None)],
    )
    return Rubric(**(data | overrides))


def test_tiny_rubric_weights():
    r = tiny_rubric()
    assert compute_score(r, {"A1": "YES", "A2": "NO", "B1": "YES", "G": "YES"}, 10).score == pytest.approx(0.875)
    assert compute_score(r, {"A1": "YES", "A2": "YES", "B1": "NO", "G": "YES"}, 10).score == pytest.approx(0.25)


def test_tiny_rubric_all_category_not_assessed_keeps_weight():
    r = tiny_rubric()
    result = compute_score(r, {"A1": "NO", "A2": "NO", "G": "YES"}, exchange_count=2)
    assert result.category_scores == {"a": 0.0, "b": 1.0}
    assert result.score == pytest.approx(0.75) and result.passed
