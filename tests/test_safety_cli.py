"""`coach safety eval` and `coach safety train`: reports, exit codes, bad files, reproducibility."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.safety.classifier import features, hashed_features, load_model, model_bytes, train
from actors.safety.corpus import CorpusError, read_corpus
from actors.safety.loader import BUNDLED_SAFETY
from actors.safety.metrics import Outcome, failures, percentile, summarise
from actors.safety.taxonomy import Thresholds
from coach_tui.cli import main


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


SMALL = [
    {"text": "i want to kill myself", "category": "active_ideation", "language": "en"},
    {"text": "me quiero morir", "category": "passive_wish", "language": "es"},
    {"text": "he threatened me with a knife tonight", "category": "danger_from_others", "language": "en"},
    {"text": "this deadline is killing me", "category": "none", "language": "en"},
    {"text": "bungee jumping off a bridge was amazing", "category": "none"},
    {"text": "i cut myself again last night", "category": "self_harm"},
]


def test_eval_prints_every_section(tmp_path):
    corpus = _write(tmp_path / "small.jsonl", SMALL)
    result = CliRunner().invoke(main, ["safety", "eval", str(corpus)])
    out = result.output
    for heading in (
        "recall",
        "false-alarm rate",
        "time per message",
        "recall by category",
        "recall by language",
        "dismissed phrases",
        "misses (",
        "false alarms (",
    ):
        assert heading in out, heading
    assert "unknown" in out  # a line without a language is counted as "unknown"
    assert result.exit_code in (0, 1)


def test_eval_json_and_exit_status_below_thresholds(tmp_path):
    rows = [*SMALL, {"text": "what a lovely afternoon in the park", "category": "attempt", "language": "en"}]
    corpus = _write(tmp_path / "miss.jsonl", rows)
    result = CliRunner().invoke(main, ["safety", "eval", str(corpus), "--json"])
    assert result.exit_code == 1  # recall 4/5 < 0.95
    report = json.loads(result.output)
    assert report["recall"]["total"] == 5 and report["recall"]["hits"] == 4  # 4/5 = 0.80
    assert report["misses"][0]["text"] == "what a lovely afternoon in the park"
    assert report["misses"][0]["label"] == "attempt"
    assert report["passed"] is False and report["failures"]
    assert {"recall_by_category", "recall_by_language", "false_alarm_rate", "p99_ms", "false_alarms"} <= set(report)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok", "category": "none"}\n{"text": "broken"\n', "line 2: not a JSON object"),
        ('{"text": "ok", "category": "none"}\n\n{"category": "none"}\n', "line 3: missing field 'text'"),
        ('["a list"]\n', "line 1: expected a JSON object"),
        ('{"text": 5, "category": "none"}\n', "line 1: field 'text' must be a string"),
        ('{"text": "x", "category": "none", "history": "no"}\n', "line 1: field 'history' must be a list"),
    ],
)
def test_bad_corpus_line_names_file_and_line(tmp_path, content, message):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["safety", "eval", str(corpus)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert str(corpus) in result.output and message in result.output
    assert result.output.count("\n") == 1  # one clear line


def test_missing_and_non_utf8_corpus(tmp_path):
    result = CliRunner().invoke(main, ["safety", "eval", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"text": "ok", "category": "none"}\n{"text": "caf\xe9", "category": "none"}\n')
    with pytest.raises(CorpusError, match="line 2: not UTF-8"):
        read_corpus(latin)


def test_corpus_history_is_used_by_eval(tmp_path):
    row = {"text": "everything is ready", "category": "plan_preparation", "language": "en"}
    alone = CliRunner().invoke(main, ["safety", "eval", str(_write(tmp_path / "alone.jsonl", [row])), "--json"])
    assert json.loads(alone.output)["recall"]["hits"] == 0
    rows = [{**row, "history": ["i want it all to stop"]}]
    result = CliRunner().invoke(main, ["safety", "eval", str(_write(tmp_path / "ctx.jsonl", rows)), "--json"])
    assert json.loads(result.output)["recall"]["hits"] == 1


# --- metrics (pure) ---------------------------------------------------------------------


def test_eval_counts_the_phrases_the_classifier_dismissed(tmp_path):
    tantrum = "my 7yo screamed 'i want to die' because i turned off the tv, five minutes later she was giggling"
    rows = [*SMALL, {"text": tantrum, "category": "none", "language": "en"}]
    corpus = _write(tmp_path / "tantrum.jsonl", rows)
    report = json.loads(CliRunner().invoke(main, ["safety", "eval", str(corpus), "--json"]).output)
    assert report["dismissed"] == {"crisis": 0, "benign": 1}
    relabelled = _write(tmp_path / "meant.jsonl", [{**rows[-1], "category": "passive_wish"}])
    result = CliRunner().invoke(main, ["safety", "eval", str(relabelled)])
    assert "0 false alarms spared, 1 crisis messages missed for it" in result.output
    assert "not flagged (phrase dismissed as a figure of speech)" in result.output


def test_metrics_figures():
    outcomes = [
        Outcome("a", "attempt", "en", True, ("attempt",), 0.001),
        Outcome("b", "attempt", "es", False, (), 0.002, dismissed=True),
        Outcome("c", "none", "en", True, ("method",), 0.003),
        Outcome("d", "none", "en", False, (), 0.004, dismissed=True),
        Outcome("e", "none", "en", False, (), 0.004, dismissed=True),
    ]
    report = summarise(outcomes, ["attempt", "method"])
    assert (report.dismissed.hits, report.dismissed.total) == (1, 3)
    outcomes = outcomes[:3] + outcomes[4:]
    report = summarise(outcomes, ["attempt", "method"])
    assert report.recall.value == 0.5
    assert report.by_language["es"].value == 0.0
    assert report.false_alarms.value == 0.5
    assert [o.text for o in report.misses] == ["b"] and [o.text for o in report.false_alarm_list] == ["c"]
    assert report.p99_ms == 4.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) == 5
    found = failures(report, Thresholds(min_messages=1))
    assert any(f.startswith("recall ") for f in found) and any("false-alarm" in f for f in found)


# --- classifier ---------------------------------------------------------------------------


def test_fast_features_equal_scikit_learn():
    texts = [
        "i want to die",
        "",
        "a",
        "x  y\tz",
        "ß 😀 kill",
        "averyveryverylongwordwithoutanyspace" * 3,
        "estoy en el puente ahora mismo",
        "ich will nicht mehr leben",
    ]
    matrix = features(texts)
    for i, text in enumerate(texts):
        indices, values = hashed_features(text)
        row = matrix[i]
        assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == pytest.approx(
            dict(zip(indices.tolist(), values.tolist(), strict=True)), abs=1e-6
        )


def _toy_corpus() -> tuple[list[str], list[str]]:
    crisis = [
        "i want to die",
        "i took all my pills",
        "i am going to kill myself tonight",
        "voices tell me to jump",
        "he beats me",
        "i cut myself again",
        "me quiero morir",
        "ich will sterben",
        "i bought a rope",
        "how many pills would kill me",
        "i will hurt him",
        "i wish i was never born",
    ]
    benign = [
        "this deadline is killing me",
        "kill the process",
        "i took two paracetamol",
        "bungee jumping was fun",
        "my phone died",
        "i could murder a pizza",
        "the film about suicide was sad",
        "dead tired",
        "hunting with my rifle",
        "cut my finger cooking",
        "dying to see you",
        "i love my cat",
    ]
    return crisis + benign, ["active_ideation"] * len(crisis) + ["none"] * len(benign)


def test_training_is_deterministic_and_reloads(tmp_path):
    texts, labels = _toy_corpus()
    categories = ["active_ideation"]
    first, report = train(texts, labels, categories, max_false_alarm=0.1, folds=3, seed=0)
    second, _ = train(texts, labels, categories, max_false_alarm=0.1, folds=3, seed=0)
    assert model_bytes(first) == model_bytes(second)
    path = tmp_path / "c.npz"
    path.write_bytes(model_bytes(first))
    loaded = load_model(path)
    assert loaded.threshold == first.threshold == report.threshold
    assert loaded.score("i want to die") == pytest.approx(first.score("i want to die"), abs=1e-6)
    assert loaded.meta["corpus_sha256"] == report.corpus_sha256


def test_bad_classifier_file_is_a_clear_error(tmp_path):
    from actors.safety.classifier import ClassifierError

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ClassifierError, match="not a readable classifier file"):
        load_model(broken)
    with pytest.raises(ClassifierError, match="missing"):
        load_model(tmp_path / "absent.npz")


@pytest.mark.slow
def test_committed_classifier_matches_a_fresh_training(tmp_path):
    """`coach safety train` gives the very bytes in the repository (training twice giving the same
    bytes is tested above on a small corpus: the full one takes a minute per training)."""
    committed = BUNDLED_SAFETY.parent / "classifier.npz"
    out = tmp_path / "fresh.npz"
    result = CliRunner().invoke(main, ["safety", "train", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fresh = out.read_bytes()
    assert hashlib.sha256(fresh).hexdigest() == hashlib.sha256(committed.read_bytes()).hexdigest(), (
        "config/safety/classifier.npz is stale: run `coach safety train`"
    )
    assert len(fresh) < 2 * 1024 * 1024
