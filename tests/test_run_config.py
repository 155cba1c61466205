"""The run config: defaults, the example file, and one clear problem per mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from actors.backends import ModelRouter
from actors.backends.anthropic_backend import AnthropicBackend
from actors.backends.claude_cli_backend import ClaudeCliBackend
from actors.backends.llama_cpp_backend import LlamaCppBackend
from actors.backends.openai_backend import OpenAIBackend
from actors.run_config import (
    ROLES,
    LlamaCppConfig,
    RunConfig,
    RunConfigError,
    load_run_config,
)
from state.errors import CoachError

EXAMPLE = Path(__file__).resolve().parents[1] / "run-config.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RunConfigError) as caught:
        load_run_config(path)
    assert all(p.file == str(path) for p in caught.value.problems)
    return [f"{p.field}: {p.message}" for p in caught.value.problems]


def test_default_puts_every_role_on_the_embedded_model(clean_env):
    config = load_run_config()
    assert config.all_backends() == {"embedded": LlamaCppConfig()}
    assert all(config.role(role).backends == ("embedded",) for role in ROLES)
    assert config.role("judge").on_overflow == "refuse" and config.role("assistant").on_overflow == "trim"
    router = ModelRouter.from_config(config)
    assert isinstance(router.backends_for("judge")[0], LlamaCppBackend)
    assert router.backends_for("judge")[0].model == "smollm2-135m-instruct"


def test_example_file_loads(tmp_path: Path):
    copy = tmp_path / "run-config.yaml"
    shutil.copy(EXAMPLE, copy)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "coach-gemma-3-270m-ft.Q4_K_M.gguf").write_bytes(b"GGUF")  # a stand-in file
    config = load_run_config(copy)
    assert config.role("judge").backends == ("claude-api", "gpt")
    assert config.role("eval_target").on_overflow == "trim"
    router = ModelRouter.from_config(config)
    kinds = {name: type(backend) for name, backend in router.backends.items()}
    assert kinds == {
        "claude-code": ClaudeCliBackend,
        "claude-api": AnthropicBackend,
        "gpt": OpenAIBackend,
        "finetuned": LlamaCppBackend,
        "base": LlamaCppBackend,
    }
    assert [b.name for b in router.backends_for("judge")] == ["claude-api", "gpt"]
    assert router.backends["finetuned"].path == tmp_path / "models" / "coach-gemma-3-270m-ft.Q4_K_M.gguf"
    assert router.backends["claude-api"].context_window == 200_000
    assert router.backends["gpt"].context_window == 1_047_576


def test_example_without_its_gguf_names_the_missing_file(tmp_path: Path):
    copy = tmp_path / "run-config.yaml"
    shutil.copy(EXAMPLE, copy)
    [problem] = problems_of(copy)
    assert problem.startswith("backends.finetuned.model (line ")
    assert f"no such GGUF file: {tmp_path / 'models'}" in problem


def test_missing_roles_fall_back_to_the_embedded_backend(tmp_path: Path):
    path = write(
        tmp_path,
        "backends:\n  gpt: {kind: openai, model: m, base_url: 'http://127.0.0.1:1/v1'}\nroles:\n  judge: gpt\n",
    )
    config = load_run_config(path)
    assert config.role("judge").backends == ("gpt",)
    assert config.role("assistant").backends == ("embedded",)
    assert set(config.all_backends()) == {"gpt", "embedded"}


def test_every_problem_is_reported_with_field_and_line(tmp_path: Path):
    path = write(
        tmp_path,
        "backends:\n"
        "  gpt:\n"
        "    kind: openai\n"
        "    modle: gpt-4.1\n"  # line 4: typo, and so model is missing
        "  other:\n"
        "    kind: vllm\n"  # line 6
        "  claude:\n"
        "    kind: anthropic\n"
        "    model: claude-sonnet-4-5\n"
        "    max_concurrency: 0\n"  # line 10
        "roles:\n"
        "  judgee: claude\n"  # line 12
        "  assistant: {backends: [claude], on_overflow: shorten}\n",  # line 13
    )
    found = problems_of(path)
    assert "backends.gpt.modle (line 4): unknown field (check its spelling)" in found
    assert "backends.gpt.model (line 2): required field is missing" in found
    assert "backends.other (line 5): unknown kind; use one of llama_cpp, openai, anthropic, claude_cli" in found
    assert any(
        p.startswith("backends.claude.max_concurrency (line 10): Input should be greater than or equal to 1")
        for p in found
    )
    assert any(p.startswith("roles.judgee (line 12): unknown role") for p in found)
    assert any(p.startswith("roles.assistant.on_overflow (line 13): Input should be 'trim' or 'refuse'") for p in found)
    assert len(found) == 6


def test_references_are_checked(tmp_path: Path):
    path = write(
        tmp_path,
        "backends:\n"
        "  a: {kind: claude_cli}\n"
        "  b: {kind: claude_cli}\n"
        "roles:\n"
        "  judge: [a, nope]\n"  # line 5
        "  assistant: [a, b]\n"  # line 6
        "  persona: ghost\n",  # line 7
    )
    found = problems_of(path)
    assert "roles.judge[1] (line 5): no backend named 'nope' (defined: a, b, embedded)" in found
    assert "roles.assistant (line 6): only judge may name several backends" in found
    assert "roles.persona (line 7): no backend named 'ghost' (defined: a, b, embedded)" in found


def test_model_must_be_bundled_or_a_gguf(tmp_path: Path):
    path = write(tmp_path, "backends:\n  x:\n    kind: llama_cpp\n    model: llama-3-8b\n")
    assert problems_of(path) == [
        "backends.x.model (line 4): 'llama-3-8b' is neither a bundled model (smollm2-135m-instruct, gemma3-270m) nor a .gguf file"
    ]


def test_yaml_syntax_error_has_a_line(tmp_path: Path):
    path = write(tmp_path, "backends:\n  a: {kind: openai\nroles: x\n")
    [problem] = problems_of(path)
    assert problem.startswith("line 3: YAML syntax error")


def test_duplicate_keys_are_refused(tmp_path: Path):
    path = write(tmp_path, "roles:\n  judge: a\n  judge: b\n")
    [problem] = problems_of(path)
    assert "duplicate key 'judge'" in problem and problem.startswith("line 3")


def test_missing_file_and_wrong_top_level(tmp_path: Path):
    assert problems_of(tmp_path / "absent.yaml") == [": no such file"]
    assert problems_of(write(tmp_path, "- a\n- b\n")) == [": expected a mapping with 'backends' and 'roles'"]


def test_error_message_lists_problems_one_per_line(tmp_path: Path):
    path = write(tmp_path, "backends:\n  a: {kind: openai}\nextra: 1\n")
    with pytest.raises(CoachError) as caught:
        load_run_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"run config {path} has 2 problem(s):"
    assert lines[1:] == [
        f"  {path}: backends.a.model (line 2): required field is missing",
        f"  {path}: extra (line 3): unknown field (check its spelling)",
    ]


def test_environment_variable_names_the_file(tmp_path: Path, clean_env):
    path = write(tmp_path, "backends:\n  cli: {kind: claude_cli}\nroles:\n  judge: cli\n")
    clean_env.setenv("COACH_RUN_CONFIG", str(path))
    assert load_run_config().role("judge").backends == ("cli",)


def test_unknown_role_at_runtime_is_a_coach_error():
    with pytest.raises(CoachError, match="unknown role 'grader'"):
        RunConfig().role("grader")


def test_router_refuses_an_invalid_config_built_in_code():
    config = RunConfig.model_validate({"backends": {}, "roles": {"judge": "missing"}})
    with pytest.raises(RunConfigError, match="roles.judge: no backend named 'missing'"):
        ModelRouter.from_config(config)
