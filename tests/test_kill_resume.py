"""Kill a real `coach run` with SIGKILL at every kind of step, resume it, and find nothing done twice.

Two runs, each a real `coach run` process killed with SIGKILL and resumed:

- On the embedded model (SmolLM2 through llama.cpp, the default backends): killed
  while a persona is enriched, in the middle of the conversation, and once the
  conversation is curated or judged. Small on purpose — one transcript of two
  exchanges, 16-token messages, and the pack `coach init-domain` writes, whose
  rubric has four criteria instead of eighteen: judge calls were most of this
  test's time, and what it proves is durability, not the model or the pack.
- On a scripted OpenAI-compatible server on loopback, whose answers send every
  transcript through an artifact fixup, a failed judging, three rubric fixups
  and a second judging: killed right after the first fixup is committed, in
  the middle of the first judging, right after the first rubric fixup, and in
  the middle of the second judging. The script decides what happens; the
  server's small delay only leaves room to kill between two steps, and the
  test watches the store to choose the moment.

After every kill the database passes `PRAGMA integrity_check` and every
completed exchange survives. After the last resume each table holds every
step once — by its step key (`state.steps`) and by what the step did — every
event that marks a step is there once, and (on the scripted server) no judge
verdict or fixup already stored was asked for again.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from conftest import Canned, Recorded, ScriptedServer

from actors.assessment.assessor import due_criteria
from actors.backends.types import Message
from tests.scripted import default_script
from tests.workers_support import EVENT_KEYS

pytestmark = pytest.mark.slow

# --- the database, read the way a person would read it --------------------------------------------

STEP_KEYS = {
    "persona": "id",
    "exchange": "transcript_id, number",
    "assessment": "transcript_id, stage",
    "windowanswer": "transcript_id, stage, judge, first_exchange, last_exchange, criterion",
    "criterionanswer": "assessment_id, criterion, judge",
    "fixup": "transcript_id, exchange_number, step",
    "rejection": "transcript_id, stage, kept_exchanges",
}
"""Each table's step key: one row per step, however often the step was replayed."""


def query(ws: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(ws / "coach.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def count(ws: Path, sql: str) -> int:
    try:
        return query(ws, sql)[0][0]
    except sqlite3.OperationalError:
        return 0  # the tables are not there yet


def duplicates(ws: Path) -> dict[str, list]:
    """Every step found more than once, by table or event kind; {} when each step is there once."""
    found: dict[str, list] = {}
    for table, key in STEP_KEYS.items():
        rows = query(ws, f"select {key}, count(*) from {table} group by {key} having count(*) > 1")
        if rows:
            found[table] = rows
    # What a step did, where its key alone could not tell a repeat (no constraint guards these).
    for table, key in {"rejection": "transcript_id, stage, action"}.items():
        rows = query(ws, f"select {key}, count(*) from {table} group by {key} having count(*) > 1")
        if rows:
            found[f"{table} ({key})"] = rows
    for kind, fields in EVENT_KEYS.items():
        key = ", ".join(f"json_extract(payload, '$.{f}')" for f in fields)
        rows = query(ws, f"select {key}, count(*) from event where kind = '{kind}' group by {key} having count(*) > 1")
        if rows:
            found[f"event {kind}"] = rows
    # A status event says the status moved: the same move twice in a row is a replayed write.
    # (`failed` may follow `failed`: a retry that fails again records its new cause.)
    last: dict[str, str] = {}
    for tid, status in query(
        ws,
        "select json_extract(payload, '$.transcript_id'), json_extract(payload, "
        "'$.status') from event where kind = 'TranscriptStatus' order by id",
    ):
        if status == last.get(tid) and status != "failed":
            found.setdefault("event TranscriptStatus repeated", []).append((tid, status))
        last[tid] = status
    return found


def completed_exchanges(ws: Path) -> set[tuple]:
    """Every completed exchange: in the transcript, or moved to a truncation record (keeping its user text)."""
    rows = set(query(ws, "select transcript_id, number, user from exchange where assistant != ''"))
    for tid, detail in query(ws, "select transcript_id, detail from rejection where action = 'truncated'"):
        rows |= {(tid, e["number"], e["user"]) for e in json.loads(detail)}
    return rows


def check_store(ws: Path) -> None:
    assert query(ws, "pragma integrity_check") == [("ok",)]
    assert duplicates(ws) == {}


# --- the process ----------------------------------------------------------------------------------


def coach(ws: Path, *args: str, domain: Path | None = None) -> subprocess.Popen:
    pack = ["--domain", str(domain)] if domain else []
    return subprocess.Popen(
        [sys.executable, "-m", "coach_tui", *pack, "-w", str(ws), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_when(ws: Path, proc: subprocess.Popen, what: str, reached, timeout: float = 300) -> None:
    """SIGKILL the run the moment `reached(ws)` holds, polling the store as another reader would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (ws / "coach.db").exists() and reached(ws):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no {what} within {timeout:.0f}s")


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
    return out


# --- 1. the embedded model ------------------------------------------------------------------------

REAL_ARGS = [
    "--transcripts",
    "1",
    "--seed",
    "11",
    "--lengths",
    "short=2,medium=2,long=2,very_long=2",
    "--max-tokens",
    "16",
    "--in-flight",
    "1",
    "--min-exchanges",
    "1",
]


def test_sigkill_real_run_at_each_stage_then_resume(tmp_path: Path):
    ws, pack = tmp_path / "ws", tmp_path / "pack"
    made = subprocess.run(
        [sys.executable, "-m", "coach_tui", "init-domain", "durability", "--path", str(pack)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    kept: set[tuple] = set()
    kill_points = [
        ("a persona enriched", lambda ws: count(ws, "select count(*) from event where kind = 'PersonaReady'") >= 1),
        ("an exchange begun", lambda ws: count(ws, "select count(*) from exchange") >= 1),
        (
            "curation or judging",
            lambda ws: (
                count(ws, "select count(*) from transcript where status in ('curating', 'assessing', 'fixing')")
                + count(ws, "select count(*) from windowanswer")
                >= 1
            ),
        ),
    ]
    for i, (what, reached) in enumerate(kill_points):
        proc = coach(ws, *REAL_ARGS, domain=pack) if i == 0 else coach(ws, "--resume", "latest", domain=pack)
        kill_when(ws, proc, what, reached)
        check_store(ws)
        now = completed_exchanges(ws)
        assert kept <= now, "a completed exchange was lost or changed"
        kept = now

    out = finish(coach(ws, "--resume", "latest", domain=pack))
    check_store(ws)
    final = completed_exchanges(ws)
    assert kept <= final and len(final) == 2
    statuses = query(ws, "select status from transcript")
    assert statuses in ([("passed",)], [("rejected",)]), statuses
    # Decided by the pipeline: assessed, or rejected during curation with a reason.
    decided = query(
        ws,
        "select count(distinct transcript_id) from (select transcript_id from assessment "
        "union select transcript_id from rejection where action = 'rejected')",
    )
    assert decided == [(1,)]
    assert "finished" in out


# --- 2. a scripted server, killed between fixups and in the middle of judgings ---------------------

BROKEN = "As an AI language model, I cannot feel, but here is my reply."
CLEAN = (
    "**Work:** A heavy week, and it makes sense that it wore on you. "
    "Maybe a short walk after lunch could give the day a pause."
)
FAILING = ("CQ2", "CQ3", "CQ6")
FIXED = "judged fine now"
DELAY_S = 0.03
TRANSCRIPTS, EXCHANGES = 2, 3
SCRIPTED_ARGS = [
    "--transcripts",
    str(TRANSCRIPTS),
    "--seed",
    "11",
    "--lengths",
    ",".join(f"{c}={EXCHANGES}" for c in ("short", "medium", "long", "very_long")),
    "--in-flight",
    "1",
    "--min-exchanges",
    "1",
]


def answer(messages: list[Message], schema: dict | None) -> str:
    """Exchange 2 breaks character; the judge fails three criteria until a rubric fixup marks the reply."""
    last = messages[-1].content
    if schema is None and "## The reply to rewrite" in last:
        issue = re.search(r"^Issue: (\S+)", last, re.M).group(1)
        return CLEAN if issue == "generation" else f"{CLEAN} That one is {FIXED} ({issue})."
    if schema is not None and "## The rewritten coach reply" in last:
        return json.dumps({"answer": "YES", "reasoning": "The next message still follows."})
    if schema is not None and "## The criterion:" in last:
        criterion = re.search(r"## The criterion: (\S+)", last).group(1)
        if criterion in FAILING and FIXED not in last:
            return json.dumps({"answer": "NO", "reasoning": f"Exchange 2 falls short on {criterion}."})
        return json.dumps({"answer": "YES", "reasoning": "Scripted judge: fine."})
    if messages[0].role == "system" and len(messages) // 2 == 2:
        return BROKEN
    if schema is None and messages[0].role != "system":
        # The user simulator: a message of its own per transcript and turn, so transcripts differ.
        return f"Work has been a lot, and I slept badly again (note {zlib.crc32(last.encode()) % 100_000})."
    return default_script(messages, schema)


def chat_completion(request: Recorded) -> Canned:
    body = request.body
    if not isinstance(body, dict):  # a request cut short by the kill
        return Canned(400, {"error": {"message": "no JSON body"}})
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
    content = answer(messages, schema)
    return Canned(
        200,
        {
            "id": "scripted",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(json.dumps(body)) // 4, "completion_tokens": len(content) // 4},
        },
        delay_s=DELAY_S,
    )


def prompts(server: ScriptedServer, marker: str) -> Counter:
    """How often each distinct prompt containing `marker` was asked."""
    asked = [
        r.body["messages"][-1]["content"] for r in server.posts("/v1/chat/completions") if isinstance(r.body, dict)
    ]  # not a request the kill cut short
    return Counter(prompt for prompt in asked if marker in prompt)


def test_sigkill_between_fixups_and_inside_judgings_then_resume(tmp_path: Path, scripted_server: ScriptedServer, pack):
    scripted_server.default = chat_completion
    config = tmp_path / "run-config.yaml"
    config.write_text(
        "backends:\n  loop:\n    kind: openai\n    model: scripted\n"
        f"    base_url: {scripted_server.url}/v1\n    max_retries: 0\n"
        "roles:\n"
        + "".join(f"  {role}: loop\n" for role in ("persona", "user_sim", "assistant", "fixup", "judge", "eval_target"))
    )
    ws = tmp_path / "ws"

    def rows(where: str) -> int:
        return count(ws, f"select count(*) from {where}")

    kill_points = [
        ("the first fixup committed", "fixup where reason_kind = 'artifact'", 1),
        ("four verdicts into the first judging", "windowanswer where stage = 'initial'", 4),
        ("the first rubric fixup committed", "fixup where reason_kind = 'criterion'", 1),
        ("four verdicts into the second judging", "windowanswer where stage = 'after_fixup'", 4),
    ]
    kept: set[tuple] = set()
    for i, (what, where, more) in enumerate(kill_points):
        before = rows(where)
        proc = (
            coach(ws, *SCRIPTED_ARGS, "--config", str(config))
            if i == 0
            else coach(ws, "--resume", "latest", "--in-flight", "1")
        )
        kill_when(ws, proc, what, lambda ws, where=where, before=before, more=more: rows(where) >= before + more)
        check_store(ws)
        now = completed_exchanges(ws)
        assert kept <= now, f"a completed exchange was lost or changed (killed after {what})"
        kept = now
    kills = len(kill_points)

    finish(coach(ws, "--resume", "latest", "--in-flight", "1"))
    check_store(ws)
    assert query(ws, "select status, count(*) from transcript group by 1") == [("passed", TRANSCRIPTS)]

    # Every table, counted: each step once.
    judged = len(due_criteria(pack.rubric, EXCHANGES))
    assert {
        t: rows(t)
        for t in ("persona", "exchange", "assessment", "windowanswer", "criterionanswer", "fixup", "rejection")
    } == {
        "persona": TRANSCRIPTS,
        "exchange": TRANSCRIPTS * EXCHANGES,
        "assessment": TRANSCRIPTS * 2,
        "windowanswer": TRANSCRIPTS * 2 * judged,
        "criterionanswer": TRANSCRIPTS * 2 * judged,
        "fixup": TRANSCRIPTS * (1 + len(FAILING)),
        "rejection": 0,
    }
    events = dict(query(ws, "select kind, count(*) from event group by kind"))
    assert {k: events.get(k, 0) for k in EVENT_KEYS} == {
        "PersonaReady": TRANSCRIPTS,
        "UserMessage": TRANSCRIPTS * EXCHANGES,
        "ExchangeAdded": TRANSCRIPTS * EXCHANGES,
        "AssessmentDone": TRANSCRIPTS * 2,
        "FixupProposed": TRANSCRIPTS * 4,
        "DecisionMade": TRANSCRIPTS * 4,
        "Rejection": 0,
    }

    # Each fixup rewrote what the one before it left: no reply was rewritten twice, and every
    # fixup's "original" is the reply as it really was.
    for (tid,) in query(ws, "select id from transcript"):
        chain = query(
            ws,
            f"select reason_kind, reason, original, proposed, decision from fixup "
            f"where transcript_id = '{tid}' and exchange_number = 2 order by id",
        )
        assert [c[0] for c in chain] == ["artifact"] + ["criterion"] * len(FAILING)
        assert "character_break" in chain[0][1] and sorted(c[1] for c in chain[1:]) == sorted(FAILING)
        assert chain[0][2] == BROKEN and all(c[4] == "accepted" for c in chain)
        for before, after in itertools.pairwise(chain):
            assert after[2] == before[3], f"{tid}: a fixup of exchange 2 did not start from the reply before it"
        assert query(ws, f"select assistant from exchange where transcript_id = '{tid}' and number = 2") == [
            (chain[-1][3],)
        ]

    # Nothing stored was asked for again: a kill loses at most the one call in flight of each kind.
    judge_prompts = prompts(scripted_server, "## The criterion:")
    assert len(judge_prompts) == TRANSCRIPTS * 2 * judged
    repeated = sum(judge_prompts.values()) - len(judge_prompts)
    assert repeated <= kills, f"{repeated} judge calls asked again after {kills} kills"
    fixup_prompts = prompts(scripted_server, "## The reply to rewrite")
    assert len(fixup_prompts) == TRANSCRIPTS * 4
    repeated = sum(fixup_prompts.values()) - len(fixup_prompts)
    assert repeated <= kills, f"{repeated} fixups asked again after {kills} kills"
