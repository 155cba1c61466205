"""The run config: which backends exist and which role talks to which.

A run names its model endpoints once (``backends:``) and maps the pipeline's
roles onto them (``roles:``), so one run can generate with one vendor, judge
with two others and evaluate a local GGUF. With no file at all every role
runs on the embedded llama.cpp model (SmolLM2-135M-Instruct, shipped by a
PyPI package), which needs no network, no key and no GPU.

    backends:
      local:  {kind: llama_cpp, model: smollm2-135m-instruct, n_ctx: 8192}
      claude: {kind: anthropic, model: claude-sonnet-4-5, api_key_env: ANTHROPIC_API_KEY}
    roles:
      assistant: claude
      judge: {backends: [claude, local], on_overflow: refuse}

Rules worth knowing:

* A role left out of ``roles:`` runs on the embedded default backend
  (named ``embedded``; define a backend of that name to change it).
* Only ``judge`` may name several backends; the others take one.
* ``on_overflow`` (``trim`` or ``refuse``) says what happens when a request
  does not fit the model's window; the default is ``trim`` for the
  conversational roles (user_sim, assistant, eval_target) and ``refuse`` for
  judge, fixup and persona, whose inputs must not be silently shortened.
* A relative GGUF path is read relative to the config file.

Loading reports every problem at once, each naming the file, the field and,
where the YAML gives one, the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from actors.pack.problems import Problem
from actors.pack.yaml_io import YamlProblem, load_yaml
from state.errors import CoachError

RoleName = Literal["user_sim", "assistant", "judge", "fixup", "persona", "eval_target", "reflector"]
ROLES: tuple[str, ...] = ("user_sim", "assistant", "judge", "fixup", "persona", "eval_target", "reflector")
"""The reflector rewrites prompts from the judge's feedback (`coach optimize`)."""
MULTI_BACKEND_ROLES = frozenset({"judge"})
BORROWS = {"reflector": "judge"}
"""A role left out of the config uses this role's (first) backend rather than the embedded model: a config
that names hosted models for every older role should not reflect with the smallest local one."""
OnOverflow = Literal["trim", "refuse"]
DEFAULT_ON_OVERFLOW: dict[str, OnOverflow] = {
    "user_sim": "trim",
    "assistant": "trim",
    "eval_target": "trim",
    "judge": "refuse",
    "fixup": "refuse",
    "persona": "refuse",
    "reflector": "trim",
}
EMBEDDED = "embedded"
CONFIG_ENV = "COACH_RUN_CONFIG"
BUNDLED_NAMES = ("smollm2-135m-instruct", "gemma3-270m")


class _BackendBase(BaseModel):
    """Settings every kind shares: limits, timeouts and the retry policy."""

    model_config = ConfigDict(extra="forbid")

    context_window: int | None = Field(
        default=None, gt=0, description="the model's window in tokens; default: known per kind"
    )
    max_concurrency: int = Field(default=4, ge=1)
    timeout_s: float | None = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="extra tries after a retryable failure")
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    structured_retries: int = Field(default=0, ge=0, description="re-asks when a structured answer does not parse")


class LlamaCppConfig(_BackendBase):
    """In-process llama-cpp-python: a bundled model by name or any GGUF path."""

    kind: Literal["llama_cpp"] = "llama_cpp"
    model: str = "smollm2-135m-instruct"
    n_ctx: int | None = Field(default=None, ge=256, description="default: the model's trained window, at most 8192")
    n_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads llama.cpp uses, for prompts and generation alike; default: "
        "COACH_LLAMA_THREADS if set, else llama.cpp's own choice (half the cores to generate, all for prompts)",
    )
    n_batch: int = Field(default=512, ge=1)
    slots: int | None = Field(
        default=None,
        ge=1,
        description="contexts (KV caches) kept for prefix reuse across interleaved prompts; "
        "default 4 for the bundled models, 1 for other GGUFs",
    )
    chat_format: Literal["auto", "gguf", "gemma3", "chatml"] = Field(
        default="auto",
        description="auto: the file's template, else Gemma 3 turns for a Gemma model; chatml: ChatML turns "
        "for a ChatML model whose file carries no template",
    )
    max_string_chars: int = Field(default=400, ge=8, description="maxLength given to free strings in schemas")
    repeat_penalty: float = Field(default=1.1, ge=1.0, le=2.0, description="llama.cpp's repeat penalty; 1.0 is none")
    max_concurrency: int = Field(default=1, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=0, ge=0)


class OpenAIConfig(_BackendBase):
    """Any OpenAI-compatible ``/chat/completions`` server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)."""

    kind: Literal["openai"] = "openai"
    model: str
    base_url: str | list[str] = Field(
        default="https://api.openai.com/v1",
        description="the server's URL, or a list of replicas of one model (calls go to the least busy)",
    )
    replica_rest_s: float = Field(
        default=30.0, gt=0, description="how long a replica that failed is left out before it is tried again"
    )
    token_limit_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens", description="max_completion_tokens for models that refuse max_tokens"
    )
    stream_usage: bool = Field(
        default=False, description="ask for token usage at the end of a stream (stream_options.include_usage)"
    )
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the key; none for local servers"
    )
    structured_output: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="json_schema (OpenAI, vLLM, Ollama, llama.cpp server) or json_object+schema (llama-cpp-python's server)",
    )

    @field_validator("base_url")
    @classmethod
    def _urls(cls, value: str | list[str]) -> str | list[str]:
        from actors.backends.urls import public  # here: the backends package imports this module

        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("give at least one URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{public(url)!r} is not an http(s) URL")
        return value


class AnthropicConfig(_BackendBase):
    """Claude through the Messages API, with prompt caching on the shared prefix."""

    kind: Literal["anthropic"] = "anthropic"
    model: str
    base_url: str = "https://api.anthropic.com"
    api_key_env: str = "ANTHROPIC_API_KEY"
    anthropic_version: str = "2023-06-01"


class ClaudeCliConfig(_BackendBase):
    """The Claude Code CLI in print mode (``claude -p … --output-format json``)."""

    kind: Literal["claude_cli"] = "claude_cli"
    model: str | None = Field(default=None, description="passed as --model; default: the CLI's own choice")
    executable: str = "claude"
    extra_args: list[str] = Field(default_factory=list, description="more CLI flags, e.g. [--max-turns, '1']")
    max_concurrency: int = Field(default=2, ge=1)
    timeout_s: float | None = Field(default=300.0, gt=0)


BackendConfig = Annotated[
    LlamaCppConfig | OpenAIConfig | AnthropicConfig | ClaudeCliConfig, Field(discriminator="kind")
]
KINDS = ("llama_cpp", "openai", "anthropic", "claude_cli")


class RoleConfig(BaseModel):
    """Which backend(s) a role uses and what to do when a request does not fit."""

    model_config = ConfigDict(extra="forbid")

    backends: list[str] = Field(min_length=1)
    on_overflow: OnOverflow | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        """``judge: claude`` and ``judge: [claude, gpt]`` are short for ``{backends: [...]}``."""
        if isinstance(value, str):
            return {"backends": [value]}
        if isinstance(value, list):
            return {"backends": value}
        return value


@dataclass(frozen=True)
class ResolvedRole:
    name: str
    backends: tuple[str, ...]
    on_overflow: OnOverflow


class RunConfig(BaseModel):
    """Backends by name and roles onto them; see the module docstring for the rules."""

    model_config = ConfigDict(extra="forbid")

    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    roles: dict[RoleName, RoleConfig] = Field(default_factory=dict)
    # Where the file was (relative GGUF paths resolve against its folder); None when built in code.
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("backends")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
                raise ValueError(f"backend name {name!r}: use letters, digits, '-', '_' or '.'")
        return value

    @property
    def source(self) -> Path | None:
        return self._source

    def located_at(self, path: Path) -> RunConfig:
        """Remember the file this config came from (relative paths resolve against its folder)."""
        self._source = path.resolve()
        return self

    @property
    def base_dir(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()

    def all_backends(self) -> dict[str, BackendConfig]:
        """The configured backends plus the embedded default when some role falls back to it."""
        backends = dict(self.backends)
        if EMBEDDED not in backends and any(EMBEDDED in self.role(role).backends for role in ROLES):
            backends[EMBEDDED] = LlamaCppConfig()
        return backends

    def role(self, name: str) -> ResolvedRole:
        if name not in ROLES:
            raise CoachError(f"unknown role {name!r}; roles are {', '.join(ROLES)}")
        configured = self.roles.get(name)  # type: ignore[call-overload]
        if configured is None and name in BORROWS:  # e.g. the reflector: the judge's model, unless named
            borrowed = self.roles.get(BORROWS[name])  # type: ignore[call-overload]
            backends = (borrowed.backends[0],) if borrowed else (EMBEDDED,)
            return ResolvedRole(name, backends, DEFAULT_ON_OVERFLOW[name])
        backends = tuple(configured.backends) if configured else (EMBEDDED,)
        on_overflow = (configured.on_overflow if configured else None) or DEFAULT_ON_OVERFLOW[name]
        return ResolvedRole(name, backends, on_overflow)

    def roles_using(self, backend: str) -> list[str]:
        return [role for role in ROLES if backend in self.role(role).backends]

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field problems pydantic cannot see, as ``(field, message)`` pairs."""
        found: list[tuple[str, str]] = []
        known = self.all_backends()
        for role, configured in self.roles.items():
            if len(configured.backends) > 1 and role not in MULTI_BACKEND_ROLES:
                found.append((f"roles.{role}", "only judge may name several backends"))
            for index, name in enumerate(configured.backends):
                if name not in known:
                    where = f"roles.{role}" if len(configured.backends) == 1 else f"roles.{role}[{index}]"
                    found.append((where, f"no backend named {name!r} (defined: {', '.join(known) or 'none'})"))
        for name, backend in self.backends.items():
            if isinstance(backend, LlamaCppConfig):
                problem = self.gguf_problem(backend.model)
                if problem:
                    found.append((f"backends.{name}.model", problem))
        return found

    def gguf_problem(self, model: str) -> str | None:
        if model in BUNDLED_NAMES:
            return None
        if not model.endswith(".gguf"):
            return f"{model!r} is neither a bundled model ({', '.join(BUNDLED_NAMES)}) nor a .gguf file"
        path = self.model_path(model)
        if not path.is_file():
            return f"no such GGUF file: {path}"
        return None

    def model_path(self, model: str) -> Path:
        """A GGUF path from the config, made absolute against the config file's folder."""
        path = Path(model).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()


class RunConfigError(CoachError):
    """Every problem in a run config, one line each, naming the file and the field."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"run config {source} has {len(problems)} problem(s):\n{lines}")


def load_run_config(path: Path | str | None = None) -> RunConfig:
    """Read and check a run config; no path (and no $COACH_RUN_CONFIG) means the embedded default."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return RunConfig()
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise RunConfigError(shown, [Problem(shown, "", "no such file")])
    try:
        data = load_yaml(path)
    except YamlProblem as err:
        raise RunConfigError(shown, [Problem(shown, f"line {err.line}" if err.line else "", err.message)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RunConfigError(shown, [Problem(shown, "", "expected a mapping with 'backends' and 'roles'")])
    lines = _LineIndex(path)
    try:
        config = RunConfig.model_validate(data).located_at(path)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = _without_tags(e["loc"])
            problems.append(Problem(shown, lines.label(loc), _message(e, loc)))
        raise RunConfigError(shown, problems) from None
    semantic = config.problems()
    if semantic:
        problems = [Problem(shown, lines.label(_loc_of(field)) or field, message) for field, message in semantic]
        raise RunConfigError(shown, problems)
    return config


def _message(error: dict[str, Any], loc: tuple[Any, ...]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field (check its spelling)"
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "union_tag_invalid":
        return f"unknown kind; use one of {', '.join(KINDS)}"
    if error["type"] == "union_tag_not_found":
        return f"'kind' is missing; use one of {', '.join(KINDS)}"
    if error["type"] == "literal_error" and len(loc) == 2 and loc[0] == "roles":
        return f"unknown role; roles are {', '.join(ROLES)}"
    return error["msg"]


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the union tag in the path (backends.x.openai.model); people do not write it."""
    if len(loc) >= 3 and loc[0] == "backends" and loc[2] in KINDS:
        return loc[:2] + loc[3:]
    if len(loc) >= 3 and loc[0] == "roles" and loc[2] == "[key]":
        return loc[:2]
    return loc


def _loc_of(field: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for piece in field.split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index.rstrip("]")))
    return tuple(parts)


class _LineIndex:
    """Finds the YAML line of a field path, so a problem can say where to look."""

    def __init__(self, path: Path) -> None:
        try:
            self.root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def label(self, loc: tuple[Any, ...]) -> str:
        text = "".join(f"[{p}]" if isinstance(p, int) else (("." if i else "") + str(p)) for i, p in enumerate(loc))
        line = self.line(loc)
        return f"{text} (line {line})" if line and text else text

    def line(self, loc: tuple[Any, ...]) -> int | None:
        node = self.root
        found: int | None = None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                if match is None:
                    break
                found = key.start_mark.line + 1 if key is not None else found
                node = match
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                found = node.start_mark.line + 1
            else:
                break
        return found
