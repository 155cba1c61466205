"""The Claude Code skills in `.claude/skills/` cannot drift from the program.

Every skill is a folder holding a `SKILL.md` whose YAML frontmatter Claude Code
reads (`name` matching the folder, a `description` that says what the skill
does and when to use it). Every `coach …` command a skill's files mention, in
a shell code block or in inline code, is parsed and checked against the real
click command tree (`coach_tui.cli.main`): each subcommand must exist, each
option must belong to the command it is given to (global options
`--workspace/-w`, `--db`, `--domain` only before the subcommand), options
that take a value must get one, choice and number values must be valid, and a
full command in a code block must carry its required options and arguments.

The checker is tested on its own (a fake skill text with `coach run --bogus`
must fail) so that a passing suite means the skills were really checked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from coach_tui.cli import main

ROOT = Path(__file__).resolve().parents[1]
SKILLS_DIR = ROOT / ".claude" / "skills"
EXPECTED_SKILLS = {
    "domain-knowledge-extraction",
    "base-model-evaluation",
    "synthetic-data-generation",
    "training-orchestration",
    "model-comparison",
}
HELP_OPTIONS = ("-h", "--help")  # main's context_settings give every command these

# --- extracting command lines -------------------------------------------------------------

SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh", "shell-session", "text"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
WRAPPERS = {"$", "time", "nohup", "exec", "env", "sudo", "command"}
SEPARATORS = {"&&", "||", ";", ";;", "|", "|&", "&", "(", ")", "{", "}", "$("}
ELLIPSIS = {"…", "...", "[…]", "[...]"}
COMMENT_COMMAND = re.compile(r"(?:^|:)\s*((?:\$\s+)?(?:\S*/)?coach(?:\s.*)?)$")


@dataclass(frozen=True)
class Mention:
    """One `coach` command found in a skill file."""

    where: str  # file:line
    args: tuple[str, ...]  # what follows `coach`
    complete: bool  # a whole command from a shell code block (required options are checked)

    def __str__(self) -> str:
        return f"{self.where}: coach {' '.join(self.args)}".rstrip()


def _tokens(text: str) -> list[str]:
    """Shell-like tokens; separators (&&, |, ;, parentheses, redirections) stay separate tokens."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: fall back to plain words
        return text.replace('"', " ").replace("'", " ").split()


def _is_separator(tok: str) -> bool:
    return tok in SEPARATORS or (bool(tok) and set(tok) <= set("();<>|&"))


REDIRECTION = re.compile(r"(?<!\S)(?:\d*>&\d+|\d*>>?\s*[^\s;&|<>]+|<(?![\w.,/ -]+>)\s*[^\s;&|<>]+)")
ANGLE_PLACEHOLDER = re.compile(r"<[\w.,/ -]+>")


def _segments(text: str) -> list[list[str]]:
    """Split a command line into simple commands, dropping redirections (`2>&1`, `> file`)."""
    text = ANGLE_PLACEHOLDER.sub("PLACEHOLDER", text)  # `<file>` is a value, not two redirections
    text = REDIRECTION.sub(" ", text)
    segments: list[list[str]] = [[]]
    for tok in _tokens(text):
        if _is_separator(tok):
            segments.append([])
        else:
            segments[-1].append(tok)
    return [s for s in segments if s]


def _coach_args(segment: list[str]) -> tuple[str, ...] | None:
    """The arguments after `coach` when the segment runs coach, else None."""
    for i, tok in enumerate(segment):
        if tok == "coach" or tok.endswith("/coach"):
            return tuple(segment[i + 1 :])
        if ENV_ASSIGNMENT.match(tok) or tok in WRAPPERS:
            continue
        return None  # e.g. `ollama create coach -f Modelfile`: coach is an argument there
    return None


def _mentions_in_line(text: str, where: str, *, complete: bool) -> list[Mention]:
    text = re.sub(r"^\s*\$\s+", "", text)  # a console prompt
    out = []
    for segment in _segments(text):
        args = _coach_args(segment)
        if args is not None:
            out.append(Mention(where, args, complete))
    return out


def extract_mentions(text: str, source: str = "<text>", *, markdown: bool = True) -> list[Mention]:
    """Every `coach` command in a Markdown text (shell code blocks and inline code) or another text file.

    In shell code blocks, backslash continuations are joined and `#` comments
    dropped; in other code blocks (YAML, …) and in non-Markdown files, only
    comment lines are read, as prose. Inline code anywhere counts.
    """
    out: list[Mention] = []
    lines = text.splitlines()
    fence: str | None = None
    lang = ""
    pending = ""
    pending_at = 0
    for number, line in enumerate(lines, 1):
        where = f"{source}:{number}"
        m = FENCE.match(line) if markdown else None
        if m and (fence is None or (m.group(1).startswith(fence[0]) and len(m.group(1)) >= len(fence))):
            if fence is None:
                fence, lang = m.group(1), m.group(2).lower()
            else:
                fence, lang = None, ""
            continue
        in_shell = markdown and fence is not None and lang in SHELL_LANGS
        if in_shell:
            if not pending and line.lstrip().startswith("#"):  # a comment line: `# then: coach review --list`
                out += _comment_mentions(line, where)
                continue
            if not pending:
                pending_at = number
            stripped = line.rstrip()
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            full = pending + stripped
            pending = ""
            out += _mentions_in_line(full, f"{source}:{pending_at}", complete=True)
            continue
        if (markdown and fence is not None) or not markdown:
            # YAML and other blocks, or a supporting non-Markdown file: read comments as prose
            out += _comment_mentions(line, where)
            continue
        for span in INLINE_CODE.finditer(line):
            out += _mentions_in_line(span.group(2), where, complete=False)
    return out


def _comment_mentions(line: str, where: str) -> list[Mention]:
    """Commands in a comment line: inline code, or `coach …` opening it or following a colon."""
    comment = re.match(r"^\s*(?:#+|//|<!--)\s?(.*)$", line)
    if not comment:
        return []
    text = comment.group(1)
    out = [m for span in INLINE_CODE.finditer(text) for m in _mentions_in_line(span.group(2), where, complete=False)]
    command = COMMENT_COMMAND.search(text)
    if command and "`" not in text:  # `# check with: coach models --config FILE`
        out += _mentions_in_line(command.group(1), where, complete=False)
    return out


# --- checking them against the click tree --------------------------------------------------

PLACEHOLDER = re.compile(
    r"""^(?:
        [A-Z][A-Z0-9_]*(?:[-./,=:][A-Za-z0-9_]*)*   # PACK, RUN_ID, N, FILE.yaml
      | .*[<>{}$…\[\]].*                           # <file>, {run}, $RUN, …
      | \.\.\.
    )$""",
    re.X,
)


def is_placeholder(token: str) -> bool:
    return bool(PLACEHOLDER.match(token))


def _option(command: click.Command, name: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and (name in param.opts or name in param.secondary_opts):
            return param
    return None


def _takes_value(param: click.Option) -> bool:
    return not param.is_flag and not param.count


def _check_value(path: str, name: str, param: click.Option, value: str) -> list[str]:
    if is_placeholder(value):
        return []
    kind = param.type
    if isinstance(kind, (click.Choice, click.types.IntParamType, click.types.FloatParamType)):
        try:
            kind.convert(value, param, None)
        except click.BadParameter as err:
            return [f"{path} {name} {value}: {err.format_message()}"]
    return []


def check_command(args: tuple[str, ...] | list[str], *, complete: bool = False) -> list[str]:
    """Problems with `coach ARGS` against the real command tree; empty when click would accept it."""
    problems: list[str] = []
    command: click.Command = main
    path = "coach"
    positionals = 0
    given: set[str] = set()
    truncated = wants_help = False
    i = 0
    args = list(args)
    while i < len(args):
        tok = args[i]
        if tok in ELLIPSIS:
            truncated = True
            break
        if tok == "--":
            positionals += len(args) - i - 1
            break
        if tok.startswith("-") and len(tok) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", tok):
            name, eq, value = tok.partition("=")
            if name in HELP_OPTIONS:
                wants_help = True
                i += 1
                continue
            param = _option(command, name)
            if param is None:
                where = "before the subcommand" if isinstance(command, click.Group) else ""
                known = sorted(o for p in command.params if isinstance(p, click.Option) for o in p.opts)
                problems.append(
                    f"`{path}` has no option {name} {where}(it has: {', '.join(known) or 'none'})".replace("  ", " ")
                )
                i += 1
                continue
            given.add(param.name or name)
            if _takes_value(param):
                if not eq:
                    if i + 1 >= len(args) or args[i + 1] in ELLIPSIS:
                        problems.append(f"`{path} {name}` needs a value")
                        i += 1
                        continue
                    value = args[i + 1]
                    i += 1
                problems += _check_value(path, name, param, value)
            elif eq:
                problems.append(f"`{path} {name}` is a flag and takes no value")
            i += 1
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(tok)
            if sub is None:
                problems.append(f"`{path}` has no subcommand {tok!r} (it has: {', '.join(sorted(command.commands))})")
                return problems
            command, path = sub, f"{path} {tok}"
            i += 1
            continue
        positionals += 1
        i += 1

    if isinstance(command, click.Group):
        return problems  # `coach`, `coach eval`: opening the app or a group's help
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if not any(a.nargs == -1 for a in arguments):
        allowed = sum(a.nargs for a in arguments)
        if positionals > allowed:
            problems.append(f"`{path}` takes {allowed} argument(s), got {positionals}")
    if complete and not truncated and not wants_help:
        for param in command.params:
            if isinstance(param, click.Option) and param.required and param.name not in given:
                problems.append(f"`{path}` needs {param.opts[-1]}")
        needed = sum(max(a.nargs, 1) for a in arguments if a.required)
        if positionals < needed:
            names = ", ".join(a.human_readable_name for a in arguments if a.required)
            problems.append(f"`{path}` needs argument(s) {names}")
    return problems


def check_text(text: str, source: str = "<text>", *, markdown: bool = True) -> list[str]:
    return [
        f"{m}  →  {p}"
        for m in extract_mentions(text, source, markdown=markdown)
        for p in check_command(m.args, complete=m.complete)
    ]


# --- the skills on disk ----------------------------------------------------------------------


def skill_dirs() -> list[Path]:
    return sorted(p.parent for p in SKILLS_DIR.glob("*/SKILL.md"))


def skill_files() -> list[Path]:
    return sorted(p for p in SKILLS_DIR.rglob("*") if p.is_file() and p.suffix in (".md", ".yaml", ".yml", ".txt"))


def frontmatter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, f"{path}: must start with YAML frontmatter between '---' lines"
    data = yaml.safe_load(m.group(1))
    assert isinstance(data, dict), f"{path}: frontmatter must be a mapping"
    return data


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_five_skills_exist():
    found = {p.name for p in skill_dirs()}
    assert found >= EXPECTED_SKILLS, f"missing skills: {sorted(EXPECTED_SKILLS - found)}"


@pytest.mark.parametrize("skill", skill_dirs(), ids=lambda p: p.name)
def test_frontmatter_is_what_claude_code_reads(skill: Path):
    meta = frontmatter(skill / "SKILL.md")
    name = meta.get("name")
    assert name == skill.name, f"name {name!r} must match the folder {skill.name!r}"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and len(name) <= 64, "name: lowercase words and hyphens"
    description = meta.get("description")
    assert isinstance(description, str) and description.strip(), "description must be a non-empty string"
    assert len(description) <= 1024, "description: at most 1024 characters"
    assert "\n\n" not in description.strip(), "description: one paragraph"
    assert re.search(r"\buse (it |this skill )?when\b", description, re.I), (
        "description must say when to use the skill ('Use when …')"
    )
    body = (skill / "SKILL.md").read_text(encoding="utf-8").split("---", 2)[2]
    assert len(body.strip()) > 200, "SKILL.md needs a body after the frontmatter"


@pytest.mark.parametrize("skill", skill_dirs(), ids=lambda p: p.name)
def test_skill_names_inputs_and_outputs_and_is_domain_agnostic(skill: Path):
    body = (skill / "SKILL.md").read_text(encoding="utf-8")
    assert re.search(r"^#+ .*\binputs?\b", body, re.I | re.M), "a section naming the inputs"
    assert re.search(r"^#+ .*\boutputs?\b", body, re.I | re.M), "a section naming the outputs"
    assert "PACK" in body, "written for any domain pack (PACK), not only the therapy one"


def test_every_coach_command_in_the_skills_exists():
    problems, mentions = [], 0
    for path in skill_files():
        text = path.read_text(encoding="utf-8")
        found = extract_mentions(text, _rel(path), markdown=path.suffix == ".md")
        mentions += len(found)
        problems += check_text(text, _rel(path), markdown=path.suffix == ".md")
    assert mentions, "no coach command found in the skills: is the extractor broken?"
    assert not problems, "commands in the skills that coach does not have:\n" + "\n".join(problems)


def test_the_skills_drive_every_stage_of_the_pipeline():
    """Guards the extractor as much as the skills: each stage's command is found and checked."""
    paths = set()
    for path in skill_files():
        for m in extract_mentions(path.read_text(encoding="utf-8"), _rel(path), markdown=path.suffix == ".md"):
            command, words = main, []
            for tok in m.args:
                if isinstance(command, click.Group) and tok in command.commands:
                    command = command.commands[tok]
                    words.append(tok)
                elif not tok.startswith("-") and isinstance(command, click.Group) and words:
                    break
            paths.add(" ".join(words))
    wanted = {
        "init-domain",
        "config check",
        "rubric doc",
        "calibrate",
        "eval base",
        "run",
        "review",
        "report curation",
        "slice",
        "train",
        "export-model",
        "eval compare",
        "models",
    }
    assert wanted <= paths, f"no skill drives: {sorted(wanted - paths)}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
REPO_PATH = re.compile(
    r"^(?:config|prompts|reference|packs|actors|coach_tui|state|tests|scripts)/[\w./-]*$"
    r"|^(?:run-config\.example\.yaml|README\.md|Makefile)$"
)


def test_links_and_repository_paths_in_the_skills_exist():
    missing = []
    for path in skill_files():
        if path.suffix != ".md":
            continue
        text = path.read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+://", target):
                continue
            if not (path.parent / target).exists():
                missing.append(f"{_rel(path)}: link {target}")
        for span in INLINE_CODE.finditer(text):
            ref = span.group(2).strip()
            if not REPO_PATH.match(ref) or re.search(r"(^|/)[A-Z][A-Z_]+(/|$|\.)", ref):
                continue  # not a path, or one with a placeholder (packs/NAME/…)
            if not (ROOT / ref).exists():
                missing.append(f"{_rel(path)}: path {ref}")
    assert not missing, "the skills point at things that do not exist:\n" + "\n".join(missing)


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```ya?ml\n(.*?)^```", text, re.S | re.M)


def test_templates_in_the_skills_are_valid_for_coach():
    """Run-config and training-preset templates load with the program's own validators."""
    from actors.run_config import load_run_config
    from actors.training.presets import parse_presets

    run_configs = [p for p in skill_files() if p.suffix in (".yaml", ".yml") and "run-config" in p.name]
    assert run_configs, "the synthetic-data-generation skill ships a run-config template"
    for path in run_configs:
        load_run_config(path)  # raises with every problem, file, field and line
    presets = 0
    for path in skill_files():
        if path.suffix != ".md":
            continue
        for block in _yaml_blocks(path.read_text(encoding="utf-8")):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and data and all(isinstance(v, dict) and "lora" in v for v in data.values()):
                parse_presets(data, _rel(path))
                presets += 1
    assert presets, "the training-orchestration skill shows a preset template"


# --- the checker itself ----------------------------------------------------------------------

FAKE_SKILL = """\
---
name: fake
description: Does nothing. Use when testing.
---
Run `coach run --bogus` first, then `coach runn --pilot`.

```bash
coach -w WS --domain PACK run --pilot \\
  --lengths short=6 --frobnicate 3
coach eval compare --base gemma3-270m
coach train --data train.jsonl --over-length sideways
coach run --domain PACK --pilot
coach eval base --personas many
coach review --list extra
```
"""

GOOD_SKILL = """\
```bash
$ coach -w workspaces/PACK --domain packs/PACK run --pilot \\
    --lengths short=6,medium=8 --mix short=1,medium=0,long=0,very_long=0   # a smoke test
COACH_RUN_CONFIG=run.yaml coach --domain PACK run -n 20 --seed 7 | tee run.log
coach --domain PACK slice --out train.jsonl --over-limit drop && coach train --data train.jsonl --preset tiny
.venv/bin/coach --help
ollama create my-model -f Modelfile && ollama run coach
coach --domain PACK …
coach eval compare --base gemma3-270m --candidate RUN_DIR/export/model.Q4_K_M.gguf --runs 3 2>&1 > log
```

Use `coach review --show <id>`, then `coach run --resume latest`; `coach eval` has two commands.

```yaml
# check it with: coach models --config run.yaml
roles: {judge: {backends: [a, b]}}
```
"""


def test_checker_catches_an_unknown_option():
    problems = check_text("Then run `coach run --bogus`.")
    assert len(problems) == 1 and "--bogus" in problems[0]


def test_checker_catches_every_kind_of_drift():
    problems = check_text(FAKE_SKILL, "fake/SKILL.md")
    text = "\n".join(problems)
    assert "--bogus" in text  # inline code, unknown option
    assert "'runn'" in text  # unknown subcommand
    assert "--frobnicate" in text  # after a backslash continuation
    assert "needs --candidate" in text  # a required option left out of a full command
    assert "sideways" in text  # a value outside an option's choices
    assert "no option --domain" in text  # a global option after the subcommand
    assert "many" in text  # not a number
    assert "takes 0 argument(s)" in text  # a stray positional
    assert all(p.startswith("fake/SKILL.md:") for p in problems)


def test_checker_accepts_real_commands_and_ignores_non_coach_ones():
    mentions = extract_mentions(GOOD_SKILL, "good.md")
    assert check_text(GOOD_SKILL, "good.md") == []
    assert len(mentions) == 11, [str(m) for m in mentions]  # `ollama run coach` is not a coach command
    first = mentions[0]
    # the backslash continuation is joined and the trailing comment dropped
    assert first.args[-1] == "short=1,medium=0,long=0,very_long=0" and first.complete


def test_checker_reads_comment_lines_in_shell_blocks():
    text = "```bash\n# afterwards: coach review --lsit\ncoach review --list   # trailing notes are prose\n```\n"
    problems = check_text(text, "x.md")
    assert len(problems) == 1 and "--lsit" in problems[0]


def test_checker_reads_comments_of_non_markdown_files():
    problems = check_text("# validate with: coach config check --strict\nkey: value\n", "x.yaml", markdown=False)
    assert len(problems) == 1 and "--strict" in problems[0]
