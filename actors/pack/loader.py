"""Loading a domain pack and reporting every problem in it at once.

A person fixing a pack wants the whole list, each item naming the file and
the field, not one error per run. `check_pack` returns that list; `load_pack`
raises `PackError` carrying it, or returns a fully validated `DomainPack`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from coach_data import bundled_dir
from state.errors import CoachError

from .calibration_cases import check_calibration
from .checks import semantic_problems
from .domain_pack import DomainPack
from .models import FlawTaxonomy, InputTaxonomy, PackManifest, Rubric
from .problems import Problem, display_path, validation_problems
from .prompts import PROMPT_NAMES
from .yaml_io import YamlProblem, load_yaml

MANIFEST = "pack.yaml"
DEFAULT_PACK_DIR = bundled_dir("config")  # the therapy pack, wherever coach is installed
# What `coach init-domain` copies: templates that ship inside this package, beside this module.
SCAFFOLD_DIR = Path(__file__).resolve().with_name("scaffold")

M = TypeVar("M", bound=BaseModel)


class PackError(CoachError):
    def __init__(self, root: Path, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"domain pack {root} has {len(problems)} problem(s):\n{lines}")


def _load_model(path: Path, model: type[M], problems: list[Problem]) -> M | None:
    shown = display_path(path)
    if not path.is_file():
        problems.append(Problem(shown, "", "file is missing"))
        return None
    try:
        data = load_yaml(path)
    except YamlProblem as err:
        problems.append(Problem(shown, f"line {err.line}" if err.line else "", err.message))
        return None
    if data is None:
        problems.append(Problem(shown, "", "file is empty"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems += validation_problems(err, data, shown)
        return None


_COMMENT = re.compile(r"<!--.*?-->[ \t]*\n?", re.S)


def strip_comments(text: str) -> str:
    """Drop HTML comments: templates may carry notes for their authors that no model should see."""
    return _COMMENT.sub("", text)


def _read_text(path: Path, what: str, problems: list[Problem]) -> str | None:
    shown = display_path(path)
    if not path.is_file():
        problems.append(Problem(shown, "", f"{what} is missing"))
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(shown, "", f"{what} is not UTF-8 text"))
        return None
    if not strip_comments(text).strip():
        problems.append(Problem(shown, "", f"{what} is empty"))
        return None
    return text


def _read_pack(
    root: Path, *, check_rubric_doc: bool = True, whole_safety: bool = True
) -> tuple[DomainPack | None, list[Problem]]:
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem(display_path(root), "", "not a directory (expected a domain pack folder)")]
    manifest = _load_model(root / MANIFEST, PackManifest, problems)
    if manifest is None:
        return None, problems

    input_tax = _load_model(root / manifest.input_taxonomy, InputTaxonomy, problems)
    flaw_tax = _load_model(root / manifest.flaw_taxonomy, FlawTaxonomy, problems)
    rubric = _load_model(root / manifest.rubric, Rubric, problems)
    system_prompt = _read_text(root / manifest.system_prompt, "system prompt", problems)

    prompts: dict[str, str] = {}
    prompts_dir = root / manifest.prompts_dir
    for name in PROMPT_NAMES:
        text = _read_text(prompts_dir / f"{name}.md", f"prompt template '{name}'", problems)
        if text is not None:
            prompts[name] = strip_comments(text).strip() + "\n"

    rubric_doc = None
    if manifest.rubric_doc and check_rubric_doc:
        rubric_doc = _read_text(root / manifest.rubric_doc, "rubric document", problems)

    problems += semantic_problems(
        manifest=manifest,
        shown=lambda rel: display_path(root / rel),
        input_taxonomy=input_tax,
        flaw_taxonomy=flaw_tax,
        rubric=rubric,
        prompts=prompts,
        prompts_shown=lambda name: display_path(prompts_dir / f"{name}.md"),
        rubric_doc=rubric_doc,
    )
    if manifest.safety:
        # The safety package reads pack problems. Loading a pack reads only safety.yaml itself:
        # compiling the lexicons and reading the classifier took seconds, and happens once, when
        # the net is first used (`load_safety_net`, which reports any problem the same way).
        from actors.safety.loader import safety_config_problems, safety_problems

        check = safety_problems if whole_safety else safety_config_problems
        problems += check(root / manifest.safety)
    if problems or None in (input_tax, flaw_tax, rubric, system_prompt):
        return None, problems
    pack = DomainPack(
        root=root.resolve(),
        manifest=manifest,
        input_taxonomy=input_tax,
        flaw_taxonomy=flaw_tax,
        rubric=rubric,
        system_prompt=strip_comments(system_prompt).strip(),
        prompts=prompts,
    )
    return pack, []


def check_pack(root: Path | str) -> list[Problem]:
    """Every problem in the pack at `root`; an empty list means it is clean.

    Calibration cases, when the pack has them, are checked last: they refer to
    the rubric, so they can only be judged against a pack that loads.
    """
    pack, problems = _read_pack(Path(root))
    if pack is not None and pack.manifest.calibration:
        problems = check_calibration(pack)
    return problems


def load_pack(root: Path | str | None = None, *, check_rubric_doc: bool = True) -> DomainPack:
    """The validated pack at `root` (the bundled default when None).

    `check_rubric_doc=False` skips the document drift check: the one caller
    is the command that regenerates the document.
    """
    path = Path(root) if root is not None else DEFAULT_PACK_DIR
    pack, problems = _read_pack(path, check_rubric_doc=check_rubric_doc, whole_safety=False)
    if pack is None:
        raise PackError(path, problems)
    return pack
