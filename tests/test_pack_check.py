"""`coach config check`: the bundled pack is clean; a broken copy gets one clear line per problem."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from actors.pack.loader import DEFAULT_PACK_DIR, PackError, check_pack, load_pack
from actors.pack.rubric_doc import render_rubric_doc
from coach_tui.cli import main

REPO = DEFAULT_PACK_DIR.parent


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A copy of the bundled pack with the folders its manifest points at."""
    for folder in ("config", "prompts", "reference"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path / "config"


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def test_bundled_pack_is_clean():
    assert check_pack(DEFAULT_PACK_DIR) == []
    pack = load_pack()
    assert pack.name == "therapy"
    assert len(pack.rubric.criteria) == 17
    assert sum(len(f.patterns) for f in pack.flaw_taxonomy.families) >= 17
    assert {f.name for f in pack.flaw_taxonomy.families} == {"communication", "resistance", "memory", "emotional"}
    assert [t.name for t in pack.input_taxonomy.topics] == [
        "anxiety",
        "relationships",
        "life_transitions",
        "self_worth",
        "emotional_regulation",
        "edge_cases",
    ]


def test_cli_check_clean_exits_zero():
    result = CliRunner().invoke(main, ["config", "check", str(DEFAULT_PACK_DIR)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "17 criteria" in result.output


def test_rubric_document_matches_rubric_yaml():
    doc = (REPO / "reference" / "assessment-rubric.md").read_text()
    assert doc == render_rubric_doc(load_pack().rubric)


def test_every_kind_of_problem_is_reported_once_with_file_and_field(pack_copy: Path):
    root = pack_copy

    def rubric_breaks(d):
        d["categories"]["multi_topic"]["weight"] = 0.25  # weights sum to 0.95
        d["criteria"][1]["id"] = "CQ1"  # duplicate id
        d["safety_gates"].append("CQ99")  # unknown gate
        d["na_invalid"].append("XX1")  # unknown NA entry

    edit_yaml(root / "rubric.yaml", rubric_breaks)
    edit_yaml(root / "input-taxonomy.yaml", lambda d: d["topics"][0].update(weight=0.5))
    edit_yaml(root / "flaw-taxonomy.yaml", lambda d: d["families"][0]["patterns"][0].update(weigth=0.1))
    (root.parent / "prompts" / "fixup.md").write_text("   \n")

    problems = [str(p) for p in check_pack(root)]
    expected = [
        (r"rubric\.yaml: categories\.\*\.weight: weights sum to 0\.95", 1),
        (r"rubric\.yaml: criteria\[\]\.id: duplicate criterion id 'CQ1'", 1),
        (r"rubric\.yaml: safety_gates: unknown criterion 'CQ99'", 1),
        (r"rubric\.yaml: na_invalid: unknown criterion 'XX1'", 1),
        (r"input-taxonomy\.yaml: topics\[\]\.weight: weights sum to 1\.3", 1),
        (r"flaw-taxonomy\.yaml: families\[0\] \(communication\)\.patterns\[0\] \(\w+\)\.weigth: unknown field", 1),
        (r"prompts/fixup\.md: prompt template 'fixup' is empty", 1),
    ]
    for pattern, count in expected:
        hits = [p for p in problems if re.search(pattern, p)]
        assert len(hits) == count, (pattern, problems)
    # The drift check only runs on a clean rubric, so nothing else is reported.
    assert len(problems) == len(expected), problems


def test_yaml_syntax_error_names_the_line(pack_copy: Path):
    path = pack_copy / "rubric.yaml"
    lines = path.read_text().splitlines()
    lines.insert(3, "categories: [unclosed")
    path.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in check_pack(pack_copy)]
    assert len(problems) == 1
    assert re.search(r"rubric\.yaml: line \d+: YAML syntax error", problems[0]), problems


def test_duplicate_yaml_keys_are_refused(pack_copy: Path):
    path = pack_copy / "pack.yaml"
    path.write_text(path.read_text() + "name: again\n")
    problems = [str(p) for p in check_pack(pack_copy)]
    assert any("duplicate key 'name'" in p and "line" in p for p in problems), problems


def test_unknown_template_variable_is_reported(pack_copy: Path):
    path = pack_copy.parent / "prompts" / "user_sim.md"
    path.write_text(path.read_text() + "\nRemember $persnoa.\n")
    problems = [str(p) for p in check_pack(pack_copy)]
    assert problems == [p for p in problems if "user_sim.md: $persnoa: unknown template variable" in p]
    assert len(problems) == 1


def test_stale_rubric_doc_is_reported_and_regenerated(pack_copy: Path, tmp_path: Path):
    edit_yaml(pack_copy / "rubric.yaml", lambda d: d["criteria"][0].update(name="Understands every topic"))
    problems = [str(p) for p in check_pack(pack_copy)]
    assert len(problems) == 1 and "assessment-rubric.md" in problems[0] and "coach rubric doc" in problems[0]
    result = CliRunner().invoke(main, ["--domain", str(pack_copy), "rubric", "doc", "--write"])
    assert result.exit_code == 0, result.output
    assert check_pack(pack_copy) == []


def test_missing_files_are_named(tmp_path: Path):
    (tmp_path / "pack.yaml").write_text("name: empty\n")
    problems = [str(p) for p in check_pack(tmp_path)]
    for name in ("input-taxonomy.yaml", "flaw-taxonomy.yaml", "rubric.yaml", "system-prompt.md", "assessor.md"):
        assert any(name in p and "missing" in p for p in problems), (name, problems)


def test_cli_reports_problems_without_traceback(pack_copy: Path):
    edit_yaml(pack_copy / "rubric.yaml", lambda d: d.update(pass_threshold=1.5))
    result = CliRunner().invoke(main, ["config", "check", str(pack_copy)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "rubric.yaml: pass_threshold:" in result.output


def test_load_pack_raises_one_error_listing_everything(pack_copy: Path):
    edit_yaml(pack_copy / "input-taxonomy.yaml", lambda d: d["styles"][0].update(weight=0.9))
    with pytest.raises(PackError) as info:
        load_pack(pack_copy)
    assert "styles[].weight" in str(info.value)


def test_commands_needing_the_pack_fail_cleanly_on_a_broken_one(pack_copy: Path, tmp_path: Path):
    (pack_copy / "rubric.yaml").write_text("pass_threshold: [\n")
    answers = tmp_path / "a.json"
    answers.write_text('{"CQ1": "YES"}')
    result = CliRunner().invoke(main, ["--domain", str(pack_copy), "rubric", "score", str(answers)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "YAML syntax error" in result.output
