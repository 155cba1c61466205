"""The Claude Code CLI backend against a stand-in ``claude`` executable put first on PATH.

The stand-in is a small Python script that records its argv and stdin and
answers with the CLI's documented ``--output-format json`` result object, or
with one of its failure modes, as the test's mode file says. A mode may be a
list, consumed one per run, to script retries.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actors.backends import BackendError, Message, ModelRouter
from actors.backends.claude_cli_backend import ClaudeCliBackend
from actors.run_config import ClaudeCliConfig, RunConfig

pytestmark = pytest.mark.anyio

STAND_IN = r'''#!{python}
"""Stand-in for the Claude Code CLI (tests only)."""
import json, os, sys, time
from pathlib import Path

state = Path(os.environ["CLAUDE_STAND_IN_DIR"])
if sys.argv[1:] == ["--version"]:
    print("2.0.0 (Claude Code)")
    sys.exit(0)
prompt = sys.stdin.read()
runs = json.loads((state / "runs.json").read_text()) if (state / "runs.json").exists() else []
runs.append({"argv": sys.argv[1:], "stdin": prompt})
(state / "runs.json").write_text(json.dumps(runs))
modes = json.loads((state / "modes.json").read_text())
mode = modes.pop(0) if len(modes) > 1 else modes[0]
(state / "modes.json").write_text(json.dumps(modes))

def result(text, *, is_error=False, subtype="success"):
    return {
        "type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 1200,
        "duration_api_ms": 1100, "num_turns": 1, "result": text, "session_id": "0f5e-test",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 40, "cache_creation_input_tokens": 10,
                  "cache_read_input_tokens": 1500, "output_tokens": 12},
        "modelUsage": {"claude-test-model": {"inputTokens": 40, "outputTokens": 12}},
    }

kind, _, text = mode.partition(":")
if kind == "ok":
    print(json.dumps(result(text)))
elif kind == "is_error":
    print(json.dumps(result(text, is_error=True, subtype="error_during_execution")))
elif kind == "exit":
    sys.stderr.write(text + "\n")
    sys.exit(2)
elif kind == "garbage":
    print("Welcome to Claude Code! " + text)
elif kind == "hang":
    time.sleep(30)
'''

VERDICT = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["YES", "NO", "NA"]}, "reasoning": {"type": "string"}},
    "required": ["verdict", "reasoning"],
}


class StandIn:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def modes(self, *modes: str) -> None:
        (self.folder / "modes.json").write_text(json.dumps(list(modes)))

    @property
    def runs(self) -> list[dict[str, Any]]:
        path = self.folder / "runs.json"
        return json.loads(path.read_text()) if path.exists() else []


@pytest.fixture
def claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "claude"
    script.write_text(STAND_IN.replace("{python}", sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CLAUDE_STAND_IN_DIR", str(tmp_path))
    stand_in = StandIn(tmp_path)
    stand_in.modes("ok:Hello from the stand-in.")
    return stand_in


def router_for(fast_retries: dict, **settings: Any) -> ModelRouter:
    config = ClaudeCliConfig(**{"model": "claude-sonnet-4-5", **fast_retries, **settings})
    return ModelRouter.from_config(
        RunConfig(backends={"cli": config}, roles={"user_sim": "cli", "judge": "cli", "persona": "cli"})
    )


async def test_prompt_on_stdin_system_and_model_flags_usage(claude: StandIn, fast_retries):
    messages = [
        Message(role="system", content="You are a worried client."),
        Message(role="user", content="Start the session."),
    ]
    async with router_for(fast_retries) as router:
        reply = await router.ask("user_sim", messages)
    assert reply.text == "Hello from the stand-in." and reply.backend == "cli" and reply.model == "claude-test-model"
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens, reply.usage.completion_tokens) == (1550, 1500, 12)
    [run] = claude.runs
    assert run["argv"][:3] == ["-p", "--output-format", "json"]
    assert run["argv"][run["argv"].index("--model") + 1] == "claude-sonnet-4-5"
    assert run["argv"][run["argv"].index("--system-prompt") + 1] == "You are a worried client."
    assert run["stdin"] == "Start the session."


async def test_conversation_history_is_written_into_the_prompt(claude: StandIn, fast_retries):
    messages = [
        Message(role="user", content="I feel stuck."),
        Message(role="assistant", content="Stuck how?"),
        Message(role="user", content="At work."),
    ]
    async with router_for(fast_retries) as router:
        await router.ask("user_sim", messages)
    prompt = claude.runs[0]["stdin"]
    assert "<user>\nI feel stuck.\n</user>" in prompt and "<assistant>\nStuck how?\n</assistant>" in prompt
    assert prompt.endswith("At work.")
    assert "--system-prompt" not in claude.runs[0]["argv"]


async def test_structured_answer_parsed_from_result(claude: StandIn, fast_retries):
    claude.modes('ok:{"verdict": "YES", "reasoning": "open"}')
    async with router_for(fast_retries) as router:
        reply = await router.ask("judge", [Message(role="user", content="Judge it.")], schema=VERDICT)
    assert reply.data == {"verdict": "YES", "reasoning": "open"} and reply.structured_error is None
    assert '"enum":["YES","NO","NA"]' in claude.runs[0]["stdin"]  # the schema travels in the prompt


async def test_unparsable_structured_answer_is_error(claude: StandIn, fast_retries):
    claude.modes("ok:The verdict is YES because the coach asked openly.")
    async with router_for(fast_retries) as router:
        reply = await router.ask("judge", [Message(role="user", content="Judge it.")], schema=VERDICT)
    assert reply.data is None and "not valid JSON" in reply.structured_error
    assert len(claude.runs) == 1


async def test_is_error_result_retried_then_reported(claude: StandIn, fast_retries):
    claude.modes("is_error:API Error: 529 Overloaded")
    async with router_for(fast_retries, max_retries=2) as router:
        with pytest.raises(BackendError) as caught:
            await router.ask("persona", [Message(role="user", content="Make a persona.")])
    assert len(claude.runs) == 3
    assert str(caught.value) == (
        "backend 'cli' (role persona) failed after 3 tries: the CLI reported an error "
        "(error_during_execution, exit 0): API Error: 529 Overloaded"
    )


async def test_nonzero_exit_with_stderr(claude: StandIn, fast_retries):
    claude.modes("exit:Invalid API key · Please run /login")
    async with router_for(fast_retries, max_retries=0) as router:
        with pytest.raises(BackendError, match=r"exited with status 2: Invalid API key · Please run /login"):
            await router.ask("user_sim", [Message(role="user", content="hi")])


async def test_invalid_json_then_success(claude: StandIn, fast_retries):
    claude.modes("garbage:not json", "ok:recovered")
    async with router_for(fast_retries, max_retries=1) as router:
        reply = await router.ask("user_sim", [Message(role="user", content="hi")])
    assert reply.text == "recovered" and len(claude.runs) == 2


async def test_invalid_json_final_error(claude: StandIn, fast_retries):
    claude.modes("garbage:oops")
    async with router_for(fast_retries, max_retries=0) as router:
        with pytest.raises(
            BackendError, match="printed something that is not its JSON result: 'Welcome to Claude Code! oops'"
        ):
            await router.ask("user_sim", [Message(role="user", content="hi")])


async def test_hang_past_timeout_is_killed(claude: StandIn, fast_retries):
    claude.modes("hang:")
    async with router_for(fast_retries, timeout_s=0.5, max_retries=1) as router:
        started = time.monotonic()
        with pytest.raises(BackendError, match="failed after 2 tries: the CLI did not answer within 0.5s"):
            await router.ask("user_sim", [Message(role="user", content="hi")])
    assert time.monotonic() - started < 5


async def test_missing_executable_not_retried(fast_retries, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    async with router_for(fast_retries, max_retries=3) as router:
        with pytest.raises(BackendError, match="'claude' is not on PATH") as caught:
            await router.ask("user_sim", [Message(role="user", content="hi")])
    assert caught.value.attempts == 1


async def test_health_runs_version(claude: StandIn):
    backend = ClaudeCliBackend("cli", ClaudeCliConfig())
    assert await backend.health() == "claude 2.0.0 (Claude Code)"


async def test_huge_system_prompt_goes_to_stdin(claude: StandIn, fast_retries):
    big = "context line\n" * 10_000  # 130 KB: over the kernel's 128 KiB single-argument limit
    async with router_for(fast_retries) as router:
        await router.ask("user_sim", [Message(role="system", content=big), Message(role="user", content="go")])
    run = claude.runs[0]
    assert "--system-prompt" not in run["argv"]
    assert run["stdin"].startswith("<instructions>\ncontext line") and run["stdin"].endswith("go")
