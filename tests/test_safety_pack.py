"""The pack's safety section: `coach config check` validates it, and every pack gets a net."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from actors.pack.loader import DEFAULT_PACK_DIR, check_pack, load_pack
from actors.safety import load_safety_net, safety_problems
from actors.safety.loader import BUNDLED_SAFETY, SafetyConfigError, load_net_at
from coach_tui.cli import main

REPO = DEFAULT_PACK_DIR.parent


@pytest.fixture
def safety_copy(tmp_path: Path) -> Path:
    """A copy of the bundled safety section (without its corpus) as its own folder."""
    target = tmp_path / "safety"
    shutil.copytree(BUNDLED_SAFETY.parent, target, ignore=shutil.ignore_patterns("corpus"))
    return target / "safety.yaml"


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> list[str]:
    """Every kind of mistake at once in one copy; the check must name each (file and field)."""
    target = tmp_path_factory.mktemp("broken") / "safety"
    shutil.copytree(BUNDLED_SAFETY.parent, target, ignore=shutil.ignore_patterns("corpus"))
    safety = target / "safety.yaml"
    lexicon = target / "lexicon"

    def section(d):
        d["steering"]["categories"]["suicide"] = "say something"
        d["resources"]["US"]["categories"]["abuse"] = "a line"
        d["languages"].append("nl")
        d["fallback_country"] = "XX"

    _edit(safety, section)
    _edit(lexicon / "en.yaml", lambda d: d["categories"].update({"suicide": {"patterns": ["kill myself"]}}))
    _edit(lexicon / "de.yaml", lambda d: d["categories"]["method"]["patterns"].append("(unclosed"))
    _edit(lexicon / "fr.yaml", lambda d: d["categories"]["method"]["patterns"].append("(?:a+)+b"))
    _edit(lexicon / "it.yaml", lambda d: d["context"]["followup"].update({"bogus": ["x"]}))
    _edit(lexicon / "es.yaml", lambda d: d["negation"]["questions"].append("(por que"))
    _edit(
        lexicon / "pt.yaml", lambda d: d["categories"]["self_harm"]["patterns"].append({"re": "x", "mention": "a bit"})
    )
    (target / "classifier.npz").unlink()
    return [str(p) for p in safety_problems(safety)]


def test_bundled_section_is_clean():
    assert safety_problems(BUNDLED_SAFETY) == []


@pytest.mark.parametrize(
    ("where", "what"),
    [
        ("en.yaml: categories.suicide", "unknown category"),
        ("it.yaml: context.followup.bogus", "unknown category"),
        ("safety.yaml: steering.categories.suicide", "unknown category"),
        ("safety.yaml: resources.US.categories.abuse", "unknown category"),
        ("de.yaml: categories.method.patterns[", "bad regular expression"),
        ("fr.yaml: categories.method.patterns[", "exponential time"),
        ("es.yaml: negation.questions", "bad regular expression"),
        ("nl.yaml", "has no lexicon"),
        ("pt.yaml: categories.self_harm.patterns.", "mention"),
        ("safety.yaml: fallback_country", "no entry under resources"),
        ("safety.yaml: classifier.file", "coach safety train"),
    ],
)
def test_every_mistake_is_named(broken, where, what):
    assert any(where in m and what in m for m in broken), broken


def test_a_file_outside_the_budget_must_be_trained_on(safety_copy):
    _edit(safety_copy, lambda d: d["classifier"].update(outside_budget=["corpus/not-in-train.jsonl"]))
    messages = [str(p) for p in safety_problems(safety_copy)]
    assert any("classifier" in m and "not in train: corpus/not-in-train.jsonl" in m for m in messages), messages


def test_field_shape_mistakes(safety_copy):
    def change(d):
        d["thresholds"].update({"recall": 1.5, "p99_ms": -1})
        d["thresholdz"] = {}
        d["categories"][0]["jokes_cancel"] = "sometimes"
        d["categories"][1]["figurative"] = "often"
        d["classifier"]["dismiss_below"] = 0.9
        d["classifier"]["min_words"] = "a few"
        d["classifier"]["segment_threshold"] = 1.5

    _edit(safety_copy, change)
    messages = [str(p) for p in safety_problems(safety_copy)]
    assert any("categories.0.jokes_cancel" in m for m in messages), messages
    assert any("categories.1.figurative" in m for m in messages), messages
    assert any("classifier.dismiss_below" in m for m in messages), messages
    assert any("classifier.min_words" in m for m in messages), messages
    assert any("classifier.segment_threshold" in m for m in messages), messages
    assert any("thresholds.recall" in m for m in messages)
    assert any("thresholds.p99_ms" in m for m in messages)
    assert any("thresholdz: unknown field" in m for m in messages)


def test_broken_section_does_not_load(safety_copy):
    _edit(safety_copy, lambda d: d.pop("steering"))
    with pytest.raises(SafetyConfigError, match="steering"):
        load_net_at(safety_copy)


def test_config_check_reports_the_safety_section(tmp_path):
    for folder in ("prompts", "reference"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copytree(REPO / "config", tmp_path / "config", ignore=shutil.ignore_patterns("corpus"))
    lexicon = tmp_path / "config" / "safety" / "lexicon" / "it.yaml"
    _edit(lexicon, lambda d: d["categories"].update({"bogus": {"terms": ["x"]}}))
    result = CliRunner().invoke(main, ["config", "check", str(tmp_path / "config")])
    assert result.exit_code == 1
    assert "it.yaml: categories.bogus: unknown category" in result.output
    assert "Traceback" not in result.output


def test_pack_without_safety_entry_gets_the_bundled_net():
    support = load_pack(REPO / "packs" / "customer-support")
    assert support.manifest.safety is None
    net = load_safety_net(support)
    assert net.path == BUNDLED_SAFETY.resolve()
    assert net.check("i want to end my life").flagged


def test_therapy_pack_names_its_section(pack):
    assert pack.manifest.safety == "safety/safety.yaml"
    assert load_safety_net(pack).path == (DEFAULT_PACK_DIR / "safety" / "safety.yaml").resolve()


def test_scaffolded_pack_is_valid_and_uses_the_bundled_net(tmp_path):
    target = tmp_path / "tutoring"
    result = CliRunner().invoke(main, ["init-domain", "tutoring", "--path", str(target)])
    assert result.exit_code == 0, result.output
    assert check_pack(target) == []
    assert load_safety_net(load_pack(target)).path == BUNDLED_SAFETY.resolve()
