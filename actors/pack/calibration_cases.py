"""The pack's calibration cases as a file: its shape, its problems, and reading it.

The cases are data in the domain pack (`calibration:` in pack.yaml), so
`coach config check` reports their problems with the rest of the pack's.
They live here, beside the pack's other files, and not with the calibration
run (`actors.assessment.calibration`): that run judges conversations, so it imports
the assessor, which needs a loaded pack — checking the file from there would
make the pack loader and the judge import each other.

One file holds:

- a pool of good exchanges from one persona's continuing story, cycled when a
  case is longer than the pool;
- cases, each the clean conversation plus edits: `replace` swaps the user
  message and/or the reply at given exchanges; `transform` rewrites every
  reply in a range. Each case lists the criteria that must FAIL and those
  that must PASS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.errors import CoachError

from .domain_pack import DomainPack
from .problems import Problem, display_path, validation_problems
from .yaml_io import YamlProblem, load_yaml

CASE_NAME = r"^[a-z0-9][a-z0-9-]*$"


# --- the file's shape -----------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CalibrationPersona(_Model):
    name: str = Field(min_length=1)
    summary: str = ""


class PoolExchange(_Model):
    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)
    question: str | None = None
    """A closing question specific to this reply, used by `transform.append_own_question`."""


class Replacement(_Model):
    exchange: int = Field(ge=1)
    user: str | None = None
    assistant: str | None = None


class Transform(_Model):
    """Rewrite the replies of exchanges `from`..`to` (every `every`-th one).

    `prepend` texts (cycled) go before the reply, separated by a blank line;
    `append` texts (cycled) or the pool exchange's own `question` go after it,
    but only on replies that do not already end with a question mark, so no
    reply ends in two stacked questions.
    """

    start: int = Field(alias="from", ge=1)
    to: int | None = Field(default=None, ge=1)
    every: int = Field(default=1, ge=1)
    prepend: list[str] = []
    append: list[str] = []
    append_own_question: bool = False

    def positions(self, exchanges: int) -> list[int]:
        """The exchanges (1-based) this transform rewrites in a conversation of `exchanges`."""
        end = min(self.to or exchanges, exchanges)
        return list(range(self.start, end + 1, self.every))


class CaseSpec(_Model):
    name: str = Field(pattern=CASE_NAME)
    description: str = ""
    must_fail: list[str] = []
    must_pass: list[str] | Literal["all"] = []
    """Criterion ids, or "all": every rubric criterion not in must_fail."""
    replace: list[Replacement] = []
    transform: list[Transform] = []


class CalibrationData(_Model):
    version: int = Field(default=1, ge=1)
    persona: CalibrationPersona
    exchanges: int = Field(ge=1)
    """Length of every case in exchanges; the pool is cycled when it is shorter."""
    pool: list[PoolExchange] = Field(min_length=1)
    cases: list[CaseSpec] = Field(min_length=1)


class CalibrationError(CoachError):
    def __init__(self, file: str, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"calibration file {file} has {len(problems)} problem(s):\n{lines}")


def ends_with_question(text: str) -> bool:
    """Whether a reply already ends in a question, markdown emphasis and closing quotes aside."""
    return text.rstrip().rstrip("*_\"')”’").endswith("?")


# --- validation -----------------------------------------------------------------------------


def calibration_problems(data: CalibrationData, pack: DomainPack, file: str) -> list[Problem]:
    """Everything wrong with `data` against `pack`'s rubric; empty when it can be built and judged."""
    rubric = pack.rubric
    known = rubric.ids
    n = data.exchanges
    out: list[Problem] = []
    seen: dict[str, int] = {}
    for i, case in enumerate(data.cases):
        where = f"cases[{i}] ({case.name})"
        if case.name in seen:
            out.append(Problem(file, f"{where}.name", f"duplicate case name (first at cases[{seen[case.name]}])"))
        seen.setdefault(case.name, i)

        listed = [("must_fail", case.must_fail)]
        if case.must_pass != "all":
            listed.append(("must_pass", case.must_pass))
        for key, ids in listed:
            for j, cid in enumerate(ids):
                if cid not in known:
                    out.append(
                        Problem(
                            file,
                            f"{where}.{key}[{j}]",
                            f"unknown criterion {cid!r} (the rubric has {', '.join(known)})",
                        )
                    )
                elif rubric.criterion(cid).min_turns > n:
                    out.append(
                        Problem(
                            file,
                            f"{where}.{key}[{j}]",
                            f"{cid} is only judged from {rubric.criterion(cid).min_turns} exchanges; cases have {n}",
                        )
                    )
            for cid in sorted({c for c in ids if ids.count(c) > 1}):
                out.append(Problem(file, f"{where}.{key}", f"{cid} is listed twice"))
        if case.must_pass != "all":
            for cid in sorted(set(case.must_fail) & set(case.must_pass)):
                out.append(Problem(file, where, f"{cid} is in both must_fail and must_pass"))
        if not case.must_fail and not case.must_pass:
            out.append(Problem(file, where, "lists no criterion: give must_fail and/or must_pass"))
        if case.must_fail and not case.replace and not case.transform:
            out.append(
                Problem(
                    file,
                    where,
                    "has must_fail criteria but no replace or transform: "
                    "nothing is injected, so the clean conversation would have to fail",
                )
            )

        counts: dict[int, int] = {}
        for j, r in enumerate(case.replace):
            rw = f"{where}.replace[{j}]"
            counts[r.exchange] = counts.get(r.exchange, 0) + 1
            if r.exchange > n:
                out.append(
                    Problem(
                        file,
                        f"{rw}.exchange",
                        f"exchange {r.exchange} is beyond the conversation's length ({n} exchanges)",
                    )
                )
            if r.user is None and r.assistant is None:
                out.append(Problem(file, rw, "replaces nothing: give user and/or assistant"))
            for key in ("user", "assistant"):
                value = getattr(r, key)
                if value is not None and not value.strip():
                    out.append(Problem(file, f"{rw}.{key}", "must not be empty"))
        for ex, count in sorted(counts.items()):
            if count > 1:
                out.append(Problem(file, f"{where}.replace", f"exchange {ex} is replaced {count} times"))

        for j, t in enumerate(case.transform):
            tw = f"{where}.transform[{j}]"
            if t.start > n:
                out.append(
                    Problem(
                        file, f"{tw}.from", f"exchange {t.start} is beyond the conversation's length ({n} exchanges)"
                    )
                )
            if t.to is not None and t.to < t.start:
                out.append(Problem(file, f"{tw}.to", f"ends ({t.to}) before it starts ({t.start})"))
            if t.to is not None and t.to > n:
                out.append(
                    Problem(file, f"{tw}.to", f"exchange {t.to} is beyond the conversation's length ({n} exchanges)")
                )
            if not (t.prepend or t.append or t.append_own_question):
                out.append(Problem(file, tw, "changes nothing: give prepend, append or append_own_question"))
            if t.append and t.append_own_question:
                out.append(Problem(file, tw, "give append or append_own_question, not both"))
            for key in ("prepend", "append"):
                for k, text in enumerate(getattr(t, key)):
                    if not text.strip():
                        out.append(Problem(file, f"{tw}.{key}[{k}]", "must not be empty"))
            if t.append_own_question:
                lacking = sorted(
                    {
                        (pos - 1) % len(data.pool)
                        for pos in t.positions(n)
                        if data.pool[(pos - 1) % len(data.pool)].question is None
                        and not ends_with_question(data.pool[(pos - 1) % len(data.pool)].assistant)
                    }
                )
                for idx in lacking:
                    out.append(
                        Problem(
                            file, f"pool[{idx}].question", f"missing, but {where} appends each reply's own question"
                        )
                    )
    return out


# --- reading --------------------------------------------------------------------------------


def _parse(path: Path, pack: DomainPack) -> tuple[CalibrationData | None, list[Problem]]:
    shown = display_path(path)
    if not path.is_file():
        return None, [Problem(shown, "", "file is missing")]
    try:
        raw = load_yaml(path)
    except YamlProblem as err:
        return None, [Problem(shown, f"line {err.line}" if err.line else "", err.message)]
    if raw is None:
        return None, [Problem(shown, "", "file is empty")]
    try:
        data = CalibrationData.model_validate(raw)
    except ValidationError as err:
        return None, validation_problems(err, raw, shown)
    return data, calibration_problems(data, pack, shown)


def calibration_path(pack: DomainPack, path: Path | str | None = None) -> Path:
    """The calibration file: `path` when given, else the one the pack's manifest names."""
    if path is not None:
        return Path(path)
    if not pack.manifest.calibration:
        raise CoachError(
            f"domain pack {pack.name!r} has no calibration cases "
            f"(add 'calibration: FILE' to its pack.yaml, or pass --calibration FILE)"
        )
    return pack.path(pack.manifest.calibration)


def check_calibration(pack: DomainPack, path: Path | str | None = None) -> list[Problem]:
    """Every problem in the calibration file; an empty list means it is clean."""
    return _parse(calibration_path(pack, path), pack)[1]


def load_calibration(pack: DomainPack, path: Path | str | None = None) -> CalibrationData:
    """The validated calibration data, or CalibrationError listing every problem with file and field."""
    resolved = calibration_path(pack, path)
    data, problems = _parse(resolved, pack)
    if data is None or problems:
        raise CalibrationError(display_path(resolved), problems)
    return data
