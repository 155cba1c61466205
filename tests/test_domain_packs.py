"""Domain-agnostic: a second pack runs the pipeline with nothing of the therapy pack leaking in,
and `coach init-domain` scaffolds a pack that validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.backends.router import ModelRouter
from actors.generation.run_plan import persona_records, plan_run
from actors.pack.loader import DEFAULT_PACK_DIR, check_pack, load_pack
from actors.run_config import RunConfig
from actors.supervisor import Supervisor
from coach_tui.cli import main
from state import pipeline as db
from state.store import Store
from tests.scripted import ScriptedBackend, default_script

SUPPORT = DEFAULT_PACK_DIR.parent / "packs" / "customer-support"
THERAPY_WORDS = re.compile(r"therap|self-care|coaching|\bcoach\b|\bCBT\b|\bDBT\b|dissociation|\b(?:CQ|CP|MT)\d\b", re.I)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_second_pack_is_clean_and_different():
    assert check_pack(SUPPORT) == []
    support, therapy = load_pack(SUPPORT), load_pack()
    assert support.name == "customer-support"
    assert not set(support.rubric.ids) & set(therapy.rubric.ids)
    assert support.rubric.safety_gates and set(support.rubric.safety_gates) <= set(support.rubric.ids)


def test_second_pack_files_hold_no_therapy_vocabulary():
    for path in SUPPORT.rglob("*"):
        if path.is_file():
            text = re.sub(r"`coach [^`]*`", "", path.read_text())  # the tool's own name in commands is fine
            hits = THERAPY_WORDS.findall(text)
            assert not hits, (path, hits)


def support_script(messages, schema):
    if schema is not None and "answer" in schema.get("properties", {}):
        return json.dumps({"answer": "YES", "reasoning": "Exchange 1 handles each issue."})
    return default_script(messages, schema).replace("Work", "Billing").replace("Sleep", "Sync")


async def test_pipeline_on_second_pack_leaks_nothing_from_therapy(tmp_path: Path):
    pack = load_pack(SUPPORT)
    store = Store.for_workspace(tmp_path / "ws")
    plan = plan_run(
        pack, "cs", transcripts=2, seed=3, lengths=dict.fromkeys(("short", "medium", "long", "very_long"), 3)
    )
    db.create_run(
        store,
        "cs",
        kind="generate",
        domain=pack.name,
        seed=3,
        config={},
        personas=persona_records(pack, plan),
        transcripts=[(t.transcript_id, t.persona_id, t.target_exchanges) for t in plan.transcripts],
    )
    backend = ScriptedBackend("embedded", script=support_script)
    summary = await Supervisor(store, ModelRouter(RunConfig(), {"embedded": backend}), pack).run("cs")
    assert summary.counts == {"passed": 2}
    assert backend.prompts, "the models were asked something"
    for prompt in backend.prompts:
        hits = THERAPY_WORDS.findall(prompt)
        assert not hits, (hits, prompt[:400])
    a, rows = db.latest_assessment(store, "cs-t0000")
    assert {r.criterion for r in rows} <= set(pack.rubric.ids) and a.passed
    topics = {t["topic"] for p in db.personas_of_run(store, "cs") for t in p.data["seed"]["topic_seeds"]}
    assert topics <= {t.name for t in pack.input_taxonomy.topics}


def test_init_domain_scaffolds_a_valid_pack(tmp_path: Path):
    target = tmp_path / "tutoring"
    result = CliRunner().invoke(main, ["init-domain", "tutoring", "--path", str(target)])
    assert result.exit_code == 0, result.output
    assert "it validates" in result.output
    assert check_pack(target) == []
    pack = load_pack(target)
    assert pack.name == "tutoring"
    assert "<!--" not in pack.prompts["assessor"]  # authors' notes never reach a model
    assert "<!--" in (target / "prompts" / "assessor.md").read_text()
    again = CliRunner().invoke(main, ["init-domain", "tutoring", "--path", str(target)])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = CliRunner().invoke(main, ["init-domain", "no spaces"])
    assert bad.exit_code == 1 and "pack name" in bad.output


def test_domain_option_selects_the_pack(tmp_path: Path):
    result = CliRunner().invoke(main, ["--domain", str(SUPPORT), "config", "check"])
    assert result.exit_code == 0 and "customer-support" in result.output
