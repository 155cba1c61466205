"""The bundled data is found through `coach_data`, and the pieces of the default pack stay siblings.

`tests/test_wheel.py` proves the same from an installed wheel (slow); these
check the editable install the suite itself runs on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import coach_data
from actors.pack.loader import DEFAULT_PACK_DIR, SCAFFOLD_DIR, load_pack
from actors.training.presets import PRESETS_FILE
from coach_data import FOLDERS, BundledDataMissing, bundled_dir
from state.errors import CoachError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", FOLDERS)
def test_each_folder_resolves_to_the_checkout(name: str):
    assert bundled_dir(name).resolve() == (REPO / name).resolve()


def test_default_pack_reads_its_prompts_and_reference_as_siblings():
    pack = load_pack()
    assert pack.root == DEFAULT_PACK_DIR.resolve() == bundled_dir("config").resolve()
    assert pack.path(pack.manifest.prompts_dir) == bundled_dir("prompts").resolve()
    assert pack.path(pack.manifest.rubric_doc).parent == bundled_dir("reference").resolve()
    assert PRESETS_FILE.is_file() and (SCAFFOLD_DIR / "pack.yaml").is_file()


def test_setup_py_maps_exactly_the_bundled_folders():
    """setup.py is not imported (that would run setup()); its folder list is read from the source."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DATA_FOLDERS"]
    ]
    assert ast.literal_eval(value) == FOLDERS


def test_unknown_folder_is_a_programming_error():
    with pytest.raises(ValueError, match="not a bundled folder"):
        bundled_dir("secrets")


def test_missing_folder_is_one_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(coach_data, "files", lambda package: tmp_path / "gone")
    with pytest.raises(BundledDataMissing, match=r"bundled config/ folder is not on disk .*; reinstall coach") as err:
        bundled_dir("config")
    assert isinstance(err.value, CoachError)
