"""`coach models` and `coach ask` through the real `coach` command group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import free_port

from coach_tui.cli import main
from coach_tui.commands.backends import ask as ask_command
from state.errors import CoachError


@pytest.fixture
def runner(clean_env) -> CliRunner:
    return CliRunner()


@pytest.fixture
def unreachable_config(tmp_path: Path) -> Path:
    """Every role on an OpenAI-compatible server that is not there."""
    roles = "\n".join(
        f"  {role}: gpt" for role in ("user_sim", "assistant", "judge", "fixup", "persona", "eval_target")
    )
    path = tmp_path / "run.yaml"
    path.write_text(
        "backends:\n"
        f"  gpt: {{kind: openai, model: m, base_url: 'http://127.0.0.1:{free_port()}/v1', max_retries: 1, backoff_initial_s: 0.01}}\n"
        f"roles:\n{roles}\n"
    )
    return path


@pytest.mark.slow
def test_models_lists_backends_roles_and_bundled_models(runner: CliRunner):
    result = runner.invoke(main, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "built-in default (no run config)" in out
    assert "embedded" in out and "llama_cpp" in out and "smollm2-135m-instruct" in out and "8,192" in out
    assert "user_sim, assistant, judge, fixup, persona, eval_target" in out
    assert "yes: loaded SmolLM2-135M-Instruct" in out
    assert "gemma3-270m" in out and "installed" in out


def test_models_reports_an_unreachable_backend(runner: CliRunner, unreachable_config: Path):
    result = runner.invoke(main, ["models", "--config", str(unreachable_config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "openai" in result.output and "no: cannot reach http://127.0.0.1" in result.output
    assert "embedded" not in result.output.split("Bundled")[0]  # every role is mapped; no fallback backend


@pytest.mark.slow
def test_ask_prints_answer_and_usage(runner: CliRunner):
    result = runner.invoke(
        main, ["ask", "--role", "assistant", "--max-tokens", "8", "--seed", "1", "--temperature", "0", "Say hello."]
    )
    assert result.exit_code == 0, result.output
    answer, usage = result.output.rstrip("\n").rsplit("\n", 1)
    assert answer.strip()
    assert usage.startswith("backend embedded · model smollm2-135m-instruct · prompt ")
    assert "cached)" in usage and "completion " in usage and usage.endswith("s")


@pytest.mark.slow
def test_ask_json_output(runner: CliRunner):
    result = runner.invoke(main, ["ask", "--json", "--max-tokens", "4", "--system", "Be terse.", "Hi"])
    assert result.exit_code == 0, result.output
    reply = json.loads(result.output)
    assert (
        reply["backend"] == "embedded"
        and reply["usage"]["prompt_tokens"] > 0
        and reply["usage"]["completion_tokens"] <= 4
    )


def test_ask_unreachable_backend_is_one_clean_line(runner: CliRunner, unreachable_config: Path):
    result = runner.invoke(main, ["ask", "--config", str(unreachable_config), "--role", "judge", "hi"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "coach: error: backend 'gpt' (role judge) failed after 2 tries: cannot reach http://127.0.0.1:"
    )
    assert "Traceback" not in result.output


def test_ask_bad_config_and_bad_role(runner: CliRunner, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends:\n  x: {kind: nope}\n")
    result = runner.invoke(main, ["ask", "--config", str(bad), "hi"])
    assert (
        result.exit_code == 1
        and "coach: error: run config" in result.output
        and "backends.x (line 2): unknown kind" in result.output
    )
    result = runner.invoke(main, ["ask", "--role", "critic", "hi"])
    assert result.exit_code == 2 and "'critic' is not one of" in result.output


def test_ask_alone_raises_coach_error(runner: CliRunner, unreachable_config: Path):
    """Outside the `coach` group the command raises CoachError for the caller to print."""
    result = runner.invoke(ask_command, ["--config", str(unreachable_config), "hi"])
    assert isinstance(result.exception, CoachError)
