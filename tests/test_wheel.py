"""coach installs like any Python tool: the wheel holds everything coach reads, and works away from this checkout.

The wheel is built offline from a copy of the working tree, installed (not
editable) into a fresh virtual environment, and driven from a folder outside
the repository: `coach config check`, `coach rubric score`, `coach
init-domain` then `coach config check` on the new pack, and `coach ask` on the
bundled model.

The dependencies are not installed again (llama.cpp would compile for
minutes): a `.pth` line puts the project environment's site-packages on the
fresh environment's path. Python runs the `.pth` files of a site directory
only, not of a folder such a line adds, so the editable install's finder stays
out; the test checks that coach itself is imported from the fresh environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# What a build must not see: environments, caches and earlier build output (stale files in build/ would ship).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", "workspace", "*.gguf"
)
# Folder in the source tree -> where the wheel puts it.
BUNDLED = {
    "config": "coach_data/config",
    "prompts": "coach_data/prompts",
    "reference": "coach_data/reference",
    "packs": "coach_data/packs",
    "actors/pack/scaffold": "actors/pack/scaffold",
    "state/migrations": "state/migrations",
}


@dataclass(frozen=True)
class Installed:
    source: Path  # the copy the wheel was built from
    wheel: Path
    python: Path
    coach: Path
    venv: Path
    outside: Path  # a working folder outside the repository
    env: dict[str, str]

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.coach), *map(str, args)],
            cwd=self.outside,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _pip(*args: str | Path) -> None:
    """The project environment's pip, offline; the failure shows pip's own words."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)

    dist = root / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--wheel-dir", dist, source)
    (wheel,) = dist.glob("coach-*.whl")

    venv = root / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    dependencies = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(purelib) / "coach-dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    # --ignore-installed: the project environment's editable coach is visible through the .pth line.
    _pip("--python", python, "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel)

    outside = root / "elsewhere"
    outside.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "COACH_RUN_CONFIG", "COACH_WORKSPACE"}
    }
    env |= {"PYTHONNOUSERSITE": "1", "COACH_WORKSPACE": str(outside / "workspace"), "NO_COLOR": "1"}
    return Installed(source, wheel, python, venv / "bin" / "coach", venv, outside, env)


def _files(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_wheel_holds_every_bundled_file(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder, inside in BUNDLED.items():
        expected = _files(installed.source / folder)
        assert expected, f"{folder}/ is empty in the source tree"
        shipped = {name.removeprefix(f"{inside}/") for name in names if name.startswith(f"{inside}/")}
        assert shipped == expected, f"{folder}/ -> {inside}/: missing {expected - shipped}, extra {shipped - expected}"
    styles = {f"coach_tui/{name}" for name in _files(installed.source / "coach_tui") if name.endswith(".tcss")}
    assert styles and styles <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.split("/", 1)[0] in {"tests", "benchmarks", "scripts"}]


def test_coach_and_its_data_come_from_the_fresh_environment(installed: Installed):
    probe = (
        "import json, coach_tui, coach_data, actors.pack.loader as pack, actors.training.presets as presets\n"
        "print(json.dumps({'coach_tui': coach_tui.__file__, 'pack': str(pack.DEFAULT_PACK_DIR),\n"
        "    'scaffold': str(pack.SCAFFOLD_DIR), 'presets': str(presets.PRESETS_FILE),\n"
        "    'packs': str(coach_data.bundled_dir('packs'))}))\n"
    )
    done = subprocess.run(
        [str(installed.python), "-c", probe],
        cwd=installed.outside,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    venv = installed.venv.resolve()
    for what, path in json.loads(done.stdout).items():
        assert Path(path).resolve().is_relative_to(venv), f"{what} is read from {path}, not the installed wheel"
        assert Path(path).exists(), f"{what}: {path} does not exist"


def test_config_check_of_the_bundled_pack(installed: Installed):
    done = installed.run("config", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    # The installed pack's relative references (prompts_dir: ../prompts, rubric_doc: ../reference/…) resolved.
    assert f"{installed.venv}" in done.stdout and ": OK" in done.stdout


def test_rubric_score_of_a_recorded_assessment(installed: Installed):
    recorded = installed.source / "tests" / "fixtures" / "assessments" / "base_seed9000_run1.json"
    copy = installed.outside / "assessment.json"
    shutil.copyfile(recorded, copy)
    done = installed.run("rubric", "score", copy.name)
    assert done.returncode == 0, done.stdout + done.stderr
    (scored,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    expected = json.loads(recorded.read_text())
    assert (scored["score"], scored["passed"]) == (expected["score"], expected["pass"])


def test_init_domain_from_the_installed_scaffold_validates(installed: Installed):
    target = installed.outside / "packs" / "gardening"
    done = installed.run("init-domain", "gardening", "--path", target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "pack.yaml").is_file() and (target / "prompts" / "assessor.md").is_file()
    assert "__NAME__" not in (target / "pack.yaml").read_text()
    checked = installed.run("config", "check", target)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ask_the_bundled_model_offline(installed: Installed):
    done = installed.run("ask", "Say hello.", "--max-tokens", "8", "--seed", "1", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    reply = json.loads(done.stdout)
    assert reply["backend"] == "embedded" and reply["model"] == "smollm2-135m-instruct"
    assert reply["text"].strip() and 0 < reply["usage"]["completion_tokens"] <= 8
