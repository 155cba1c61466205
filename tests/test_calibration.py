"""Assessor calibration: the bundled cases, their validation, the scoring rules, and a run with a scripted judge."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from actors.assessment.assessor import render_exchanges
from actors.assessment.calibration import (
    CaseResult,
    build_cases,
    format_table,
    planned_calls,
    run_calibration,
    score_calibration,
    select_cases,
)
from actors.backends.errors import BackendError
from actors.pack.calibration_cases import (
    CalibrationData,
    CalibrationError,
    calibration_problems,
    check_calibration,
    load_calibration,
)
from actors.pack.loader import load_pack
from coach_tui.commands.calibrate import calibrate_cmd
from coach_tui.context import AppContext
from state.errors import CoachError
from tests.scripted import ScriptedBackend, default_script
from tests.test_supervisor import router_with

BRIEF_FAILURES = {"MT1", "CQ8", "CQ9", "CP4", "CP5", "MT7", "CQ2"}
EMBEDDED_WINDOW = 8192


@pytest.fixture(scope="module")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def cases(pack):
    return build_cases(pack, load_calibration(pack))


def by_name(cases, name):
    return next(c for c in cases if c.name == name)


def ends_with_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def opener(reply: str) -> str:
    """The first words of a reply after any leading topic label."""
    text = re.sub(r"^\*\*[^*]+\*\*\s*", "", reply.strip())
    return " ".join(text.split()[:5]).lower()


# --- the bundled data ---------------------------------------------------------------------------


def test_bundled_calibration_validates_against_the_bundled_pack(pack):
    assert pack.manifest.calibration == "calibration.yaml"
    assert check_calibration(pack) == []


def test_every_case_is_long_and_single_failures_are_buried_deep(pack, cases):
    data = load_calibration(pack)
    assert len(data.pool) >= 12
    assert {c for case in cases for c in case.must_fail} >= BRIEF_FAILURES
    for case in cases:
        assert len(case.turns) >= 30, case.name
        spec = next(s for s in data.cases if s.name == case.name)
        if case.must_fail and spec.replace and not spec.transform:
            assert case.buried_at > 20, case.name
            assert all(n > 20 for n in case.edited), case.name
        if case.must_fail and spec.transform:
            # A pattern across turns: it must cover at least a third of the replies.
            assert len(case.edited) >= len(case.turns) / 3, case.name
    clean = by_name(cases, "clean")
    assert clean.edited == [] and clean.must_fail == [] and clean.must_pass == pack.rubric.ids
    assert any(c.must_pass and not c.must_fail and c.name != "clean" for c in cases)


def test_pool_reads_like_the_house_style(pack, cases):
    data = load_calibration(pack)
    for i, p in enumerate(data.pool, 1):
        words = len(p.user.split())
        assert 120 <= words <= 250, (i, words)
        labels = re.findall(r"\*\*[^*\n]+:\*\*", p.assistant)
        assert 2 <= len(labels) <= 4, (i, labels)
    clean = by_name(cases, "clean")
    assert len({t.user for t in clean.turns}) == len(clean.turns)  # the pool is not repeated
    openers = Counter(opener(t.assistant) for t in clean.turns)
    assert openers.most_common(1)[0][1] <= 2, openers.most_common(3)
    share = sum(ends_with_question(t.assistant) for t in clean.turns) / len(clean.turns)
    assert share < 0.4


def test_pattern_cases_have_the_pattern_they_claim(cases):
    n = 32
    formulaic = by_name(cases, "formulaic-openers")
    top, count = Counter(opener(t.assistant) for t in formulaic.turns).most_common(1)[0]
    assert top.startswith("that sounds really hard") and count >= n / 3

    interrogation = by_name(cases, "question-endings")
    assert sum(ends_with_question(t.assistant) for t in interrogation.turns) / n >= 0.85

    genuine = by_name(cases, "genuine-questions")
    flags = [ends_with_question(t.assistant) for t in genuine.turns]
    clean_flags = [ends_with_question(t.assistant) for t in by_name(cases, "clean").turns]
    assert sum(clean_flags) < sum(flags) <= 0.6 * n
    assert max(sum(flags[i : i + 10]) for i in range(n - 9)) < 8  # under 80 % in any stretch a window sees


def test_single_edits_carry_the_failure_they_name(cases):
    clean = by_name(cases, "clean")
    dropped = by_name(cases, "dropped-topic")
    assert "mum's name" in clean.turns[22].user.lower()
    assert "mum's name" in clean.turns[22].assistant.lower()
    assert "mum's name" not in dropped.turns[22].assistant.lower()

    diagnosis = by_name(cases, "diagnosis")
    assert [i + 1 for i, t in enumerate(diagnosis.turns) if "dissociation" in t.assistant] == [28]
    assert not any("dissociation" in t.assistant for t in clean.turns)

    crisis = by_name(cases, "missed-crisis")
    assert "didn't wake up" in crisis.turns[24].user
    later = " ".join(t.assistant.lower() for t in crisis.turns[24:])
    assert not any(word in later for word in ("crisis", "emergency", "ending your life", "wake up"))

    no_follow = by_name(cases, "no-follow-up")
    assert "ten minutes" in no_follow.turns[20].assistant  # the experiment is still suggested
    assert "ten minutes in the car" in clean.turns[21].assistant  # the clean reply follows it up
    hints = ("ten minutes in the car", "buffer", "biscuit", "sitting outside", "sat outside")
    assert not any(h in t.assistant for t in no_follow.turns[21:] for h in hints)
    assert any(h in clean.turns[23].assistant for h in hints)
    assert "sat outside in the car" in no_follow.turns[23].user  # and the user hints at it


# --- validation ---------------------------------------------------------------------------------


def broken_copy(tmp_path: Path, pack, edit) -> Path:
    target = tmp_path / "calibration.yaml"
    shutil.copy(pack.path(pack.manifest.calibration), target)
    target.write_text(edit(target.read_text(encoding="utf-8")), encoding="utf-8")
    return target


def test_semantic_problems_name_file_and_field(tmp_path, pack):
    def edit(text):
        text = text.replace("must_fail: [MT1]", "must_fail: [MT9]")
        text = text.replace("      - exchange: 26\n", "      - exchange: 40\n")
        text = text.replace("      - from: 21\n", "      - from: 50\n")
        text = text.replace("must_pass: [CQ9]", "must_pass: [CQ9, CQ9]")
        return text.replace("  - name: diagnosis\n", "  - name: dropped-topic\n")

    path = broken_copy(tmp_path, pack, edit)
    problems = check_calibration(pack, path)
    shown = {(p.field, p.message) for p in problems}
    assert all(p.file.endswith("calibration.yaml") for p in problems)
    assert any(f == "cases[5] (dropped-topic).must_fail[0]" and "unknown criterion 'MT9'" in m for f, m in shown)
    assert any(
        f.endswith("(asserted-interpretation).replace[0].exchange") and "beyond" in m and "32" in m for f, m in shown
    )
    assert any(f.endswith("(formulaic-openers).transform[0].from") and "beyond" in m for f, m in shown)
    assert any(f.endswith("(figure-of-speech).must_pass") and "listed twice" in m for f, m in shown)
    assert any(f.endswith(".name") and "duplicate case name" in m for f, m in shown)
    with pytest.raises(CalibrationError) as err:
        load_calibration(pack, path)
    assert "calibration.yaml" in str(err.value) and "MT9" in str(err.value)


def test_schema_and_syntax_problems(tmp_path, pack):
    path = broken_copy(tmp_path, pack, lambda t: t.replace("    must_fail: [CQ8]\n", "    must_fial: [CQ8]\n"))
    problems = check_calibration(pack, path)
    assert [(p.field, p.message) for p in problems] == [
        ("cases[6] (diagnosis).must_fial", "unknown field (check its spelling)")
    ]

    path.write_text("version: 1\npersona: {name: X\n", encoding="utf-8")
    (problem,) = check_calibration(pack, path)
    assert problem.field.startswith("line ") and "YAML" in problem.message

    path.write_text(
        "version: 1\npersona: {name: X}\nexchanges: 2\npool:\n  - {user: hi, assistant: hello}\n"
        "cases:\n  - name: lonely\n    must_fail: [CP4]\n",
        encoding="utf-8",
    )
    messages = {(p.field, p.message) for p in check_calibration(pack, path)}
    assert messages == {
        (
            "cases[0] (lonely)",
            (
                "has must_fail criteria but no replace or transform: nothing is injected, "
                "so the clean conversation would have to fail"
            ),
        ),
        ("cases[0] (lonely).must_fail[0]", "CP4 is only judged from 3 exchanges; cases have 2"),
    }


def test_pack_without_calibration_is_a_clear_error(pack):
    import dataclasses

    bare = dataclasses.replace(pack, manifest=pack.manifest.model_copy(update={"calibration": None}))
    with pytest.raises(CoachError, match="no calibration cases"):
        load_calibration(bare)


def test_select_cases_narrows_and_refuses_unknown_names(cases):
    narrowed = select_cases(cases, criteria={"CQ8"})
    assert {c.name for c in narrowed} == {"clean", "own-label-mirrored", "diagnosis"}
    assert all(c.criteria == ["CQ8"] for c in narrowed)
    with pytest.raises(CoachError, match="nope"):
        select_cases(cases, names=["nope"])


# --- scoring ------------------------------------------------------------------------------------


def result(case, answers, must_fail=(), must_pass=()):
    return CaseResult(case=case, must_fail=list(must_fail), must_pass=list(must_pass), answers=answers)


def test_scoring_counts_caught_and_spared_with_na_and_error_rules():
    results = [
        result("f1", {"MT1": "NO"}, must_fail=["MT1"]),
        result("f2", {"MT1": "NA"}, must_fail=["MT1"]),
        result("f3", {"MT1": "ERROR"}, must_fail=["MT1"]),
        result("f4", {"MT1": "YES"}, must_fail=["MT1"]),
        result("f5", {}, must_fail=["CQ9"]),  # never answered: an error, not a catch
        result("p1", {"MT1": "YES", "CQ9": "NA", "CP5": "NO"}, must_pass=["MT1", "CQ9", "CP5"]),
        result("p2", {"MT1": "NA", "CP5": "ERROR"}, must_pass=["MT1", "CP5"]),
    ]
    score = score_calibration(results, na_invalid={"MT1"}, order=["CQ9", "CP5", "MT1"])
    rows = {s.criterion: s for s in score.criteria}
    assert [s.criterion for s in score.criteria] == ["CQ9", "CP5", "MT1"]

    mt1 = rows["MT1"]
    assert (mt1.must_fail, mt1.caught, mt1.fail_na, mt1.fail_errors) == (4, 1, 1, 1)
    assert mt1.missed == ["f2", "f3", "f4"] and mt1.caught_rate == 0.25
    assert (mt1.must_pass, mt1.spared, mt1.false_alarms) == (2, 1, ["p2"])  # NA where NA is invalid is penalized
    assert mt1.spared_rate == 0.5

    cq9 = rows["CQ9"]
    assert (cq9.must_fail, cq9.caught, cq9.fail_errors, cq9.missed) == (1, 0, 1, ["f5"])
    assert (cq9.must_pass, cq9.spared, cq9.spared_rate) == (1, 1, 1.0)  # NA where allowed is spared

    cp5 = rows["CP5"]
    assert cp5.caught_rate is None
    assert (cp5.must_pass, cp5.spared, cp5.pass_errors, cp5.false_alarms) == (2, 0, 1, ["p1"])

    assert score.caught_rate == 1 / 5 and score.spared_rate == 2 / 5 and score.errors == 3
    table = format_table(score)
    assert "MT1" in table and "1/4" in table and "25%" in table and "false alarm: p2" in table
    assert table.splitlines()[-1].split()[:3] == ["overall", "1/5", "20%"]
    summary = score.as_dict()
    assert summary["caught"] == 1 and summary["must_pass"] == 5


def test_scoring_of_nothing_is_empty():
    score = score_calibration([])
    assert score.criteria == [] and score.caught_rate is None and score.spared_rate is None


# --- a run with a scripted judge ------------------------------------------------------------------


def oracle_script(cases):
    """A judge that says NO exactly where an injected failure is visible in the window, else YES (NA for CQ9).

    It reads exchanges as the judge is shown them, the crisis net's marks included."""
    failing: dict[str, set[str]] = {}
    sparing: dict[str, set[str]] = {}
    pack = load_pack()
    for case in cases:
        rendered = render_exchanges(pack, case.turns)
        for n in case.edited:
            shown = rendered[n - 1].rstrip("\n")
            for cid in case.must_fail:
                failing.setdefault(cid, set()).add(shown)
            for cid in case.must_pass:
                sparing.setdefault(cid, set()).add(shown)

    def script(messages, schema):
        if schema is None or "answer" not in schema.get("properties", {}):
            return default_script(messages, schema)
        prompt = messages[-1].content
        cid = re.search(r"## The criterion: (\w+) —", prompt).group(1)
        # Whole exchanges only: a reply with a section cut off is a prefix of the clean reply.
        transcript = prompt.split("\n\n## How to judge")[0]
        blocks = {b.strip("\n") for b in re.split(r"\n(?=### Exchange \d+[ \n])", transcript)}
        if blocks & (failing.get(cid, set()) - sparing.get(cid, set())):
            return json.dumps({"answer": "NO", "reasoning": "The injected failure is in this window."})
        if cid == "CQ9":
            return json.dumps({"answer": "NA", "reasoning": "No crisis signal."})
        return json.dumps({"answer": "YES", "reasoning": "Fine."})

    return script


def oracle_router(cases):
    return router_with(judge=ScriptedBackend("judge", script=oracle_script(cases), context_window=EMBEDDED_WINDOW))


async def test_a_judge_that_is_right_catches_and_spares_everything(pack, cases):
    router = oracle_router(cases)
    seen = []
    results = await run_calibration(router, pack, cases, on_done=lambda i, c, r: seen.append(c.name))
    assert seen == [c.name for c in cases]
    for case, r in zip(cases, results, strict=True):
        assert r.windows > 1, case.name  # long enough to need windows at an 8K context
        assert (r.windows, r.calls) == planned_calls(router, pack, case)
        assert set(r.answers) == set(case.criteria)
    score = score_calibration(results, na_invalid=pack.rubric.na_invalid, order=pack.rubric.ids)
    assert score.caught_rate == 1.0 and score.spared_rate == 1.0 and score.errors == 0
    assert {s.criterion for s in score.criteria if s.must_fail} >= BRIEF_FAILURES
    assert {s.criterion for s in score.criteria if s.must_pass} == set(pack.rubric.ids)
    judge = router.backends_for("judge")[0]
    assert judge.calls == sum(r.calls for r in results)


async def test_a_judge_that_never_answers_is_a_broken_backend(pack, cases):
    router = router_with(judge=ScriptedBackend("judge", fail_after=0))
    with pytest.raises(BackendError):
        await run_calibration(router, pack, select_cases(cases, names=["diagnosis"]))


async def test_unparsable_answers_are_errors_not_verdicts(pack, cases):
    def garbage(messages, schema):
        return "definitely NO" if schema else default_script(messages, schema)

    router = router_with(judge=ScriptedBackend("judge", script=garbage, context_window=EMBEDDED_WINDOW))
    picked = select_cases(cases, names=["diagnosis", "own-label-mirrored"], criteria={"CQ8"})
    results = await run_calibration(router, pack, picked)
    score = score_calibration(results, na_invalid=pack.rubric.na_invalid)
    (cq8,) = score.criteria
    assert (cq8.caught, cq8.fail_errors, cq8.spared, cq8.pass_errors) == (0, 1, 0, 1)


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def scripted_from_config(monkeypatch, cases):
    from actors.backends.router import ModelRouter

    built = []

    def fake(config=None):
        router = oracle_router(cases)
        built.append(router)
        return router

    monkeypatch.setattr(ModelRouter, "from_config", staticmethod(fake))
    return built


def invoke(tmp_path, *args):
    return CliRunner().invoke(calibrate_cmd, list(args), obj=AppContext(workspace_option=str(tmp_path / "ws")))


def test_cli_prints_the_table_and_writes_the_report(tmp_path, scripted_from_config):
    out = tmp_path / "report.json"
    res = invoke(
        tmp_path, "--cases", "dropped-topic,own-label-mirrored,clean", "--limit-criteria", "MT1,CQ8", "--out", str(out)
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"3 case\(s\), 4 criterion verdict\(s\), \d+ window\(s\): about \d+ judge call\(s\)", res.output)
    assert "[1/3] clean" in res.output and "[3/3] dropped-topic (32 exchanges, edit at 23)" in res.output
    assert "MT1 NO (caught)" in res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    assert lines["MT1"].split()[1:3] == ["1/1", "100%"] and lines["MT1"].split()[3:5] == ["1/1", "100%"]
    assert lines["CQ8"].split()[1:5] == ["—", "—", "2/2", "100%"]
    report = json.loads(out.read_text())
    assert report["summary"]["caught_rate"] == 1.0 and report["summary"]["spared_rate"] == 1.0
    assert report["partial"] is False and report["pack"] == "therapy"
    assert [c["case"] for c in report["cases"]] == ["clean", "own-label-mirrored", "dropped-topic"]
    assert report["cases"][2]["edited_exchanges"] == [23]
    assert report["cases"][2]["reasons"]["MT1"][0]["answer"] == "NO"


def test_cli_default_report_goes_to_the_workspace(tmp_path, scripted_from_config):
    res = invoke(tmp_path, "--limit-criteria", "CQ2")
    assert res.exit_code == 0, res.output
    (written,) = (tmp_path / "ws" / "reports").glob("calibration-*.json")
    assert json.loads(written.read_text())["summary"]["caught"] == 1


def test_cli_list_judges_nothing(tmp_path, scripted_from_config):
    res = invoke(tmp_path, "--list")
    assert res.exit_code == 0, res.output
    assert "12 case(s)" in res.output and "no-follow-up" in res.output and "must fail MT7" in res.output
    assert scripted_from_config == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--limit-criteria", "XX9"], "unknown criterion XX9"),
        (["--cases", "nope"], "unknown calibration case(s) nope"),
        (["--cases", "diagnosis", "--limit-criteria", "MT7"], "no calibration case is about"),
    ],
)
def test_cli_refuses_user_mistakes(tmp_path, scripted_from_config, args, message):
    res = invoke(tmp_path, *args)
    assert isinstance(res.exception, CoachError) and message in str(res.exception)
    assert scripted_from_config == []


def test_cli_reports_a_broken_calibration_file(tmp_path, pack, scripted_from_config):
    path = broken_copy(tmp_path, pack, lambda t: t.replace("must_fail: [CQ2]", "must_fail: [CQ99]"))
    res = invoke(tmp_path, "--calibration", str(path))
    assert isinstance(res.exception, CalibrationError)
    assert "(asserted-interpretation).must_fail[0]: unknown criterion 'CQ99'" in str(res.exception)
    assert scripted_from_config == []


def test_a_short_pool_is_cycled_and_edits_apply_in_order(pack):
    data = CalibrationData.model_validate(
        {
            "persona": {"name": "X"},
            "exchanges": 5,
            "pool": [{"user": "u1", "assistant": "a1", "question": "q1?"}, {"user": "u2", "assistant": "a2?"}],
            "cases": [
                {
                    "name": "c",
                    "must_fail": ["CP5"],
                    "replace": [{"exchange": 4, "assistant": "swapped"}],
                    "transform": [{"from": 2, "prepend": ["P"], "append_own_question": True}],
                }
            ],
        }
    )
    assert calibration_problems(data, pack, "f") == []
    (case,) = build_cases(pack, data)
    assert [t.user for t in case.turns] == ["u1", "u2", "u1", "u2", "u1"]
    assert [t.assistant for t in case.turns] == ["a1", "P\n\na2?", "P\n\na1 q1?", "P\n\nswapped", "P\n\na1 q1?"]
    assert (case.buried_at, case.edited) == (2, [2, 3, 4, 5])


# --- --quick: each kind of planted failure, one window each ------------------------------------------


def test_quick_covers_each_kind_of_planted_failure_in_one_window_each(pack, cases):
    from actors.assessment.calibration import QUICK_MUST_FAIL, QUICK_MUST_PASS, quick_cases

    quick = quick_cases(cases, safety_gates=pack.rubric.safety_gates)
    planted = [c for c in quick if c.must_fail]
    assert {c.kind for c in planted} == {c.kind for c in cases if c.must_fail} == {"buried", "pattern"}
    assert len(planted) == QUICK_MUST_FAIL and sum(not c.must_fail for c in quick) == QUICK_MUST_PASS
    assert {cid for c in planted for cid in c.must_fail} & set(pack.rubric.safety_gates)  # the gate stays in
    assert [c.buried_at for c in quick] == sorted((c.buried_at for c in quick), reverse=True)  # for the prefix cache
    assert all(c.focused for c in quick)
    router = oracle_router(cases)
    assert [planned_calls(router, pack, c) for c in quick] == [(1, 1)] * len(quick)
    full = sum(planned_calls(router, pack, c)[0] for c in cases if c.name in {q.name for q in quick})
    assert full >= 2 * len(quick)  # the same cases judged whole read at least twice the windows


def test_the_focused_window_is_the_one_holding_most_edits(cases):
    import dataclasses

    from actors.assessment.calibration import focus_window

    windows = [(0, 11), (9, 21), (19, 32)]
    buried = dataclasses.replace(by_name(cases, "dropped-topic"), focused=True)  # edit at 23
    assert focus_window(buried)(windows) == [(19, 32)]
    early = dataclasses.replace(buried, edited=[10])  # in the overlap of the first two: the later one
    assert focus_window(early)(windows) == [(9, 21)]
    pattern = dataclasses.replace(by_name(cases, "formulaic-openers"), focused=True)  # replies 21-32
    assert focus_window(pattern)(windows) == [(19, 32)]
    assert focus_window(by_name(cases, "dropped-topic")) is None  # not focused: every window
    assert focus_window(dataclasses.replace(by_name(cases, "clean"), focused=True)) is None  # no edit


async def test_a_quick_run_judges_only_the_focused_windows_and_still_catches(pack, cases):
    from actors.assessment.calibration import quick_cases

    quick = quick_cases(cases, safety_gates=pack.rubric.safety_gates)
    router = oracle_router(cases)
    results = await run_calibration(router, pack, quick)
    assert [(r.windows, r.calls) for r in results] == [(1, 1)] * len(quick)
    score = score_calibration(results, na_invalid=pack.rubric.na_invalid, order=pack.rubric.ids)
    assert score.caught_rate == 1.0 and score.spared_rate == 1.0
    judge = router.backends_for("judge")[0]
    assert judge.calls == len(quick)


def test_cli_quick_says_what_it_judges(tmp_path, scripted_from_config):
    res = invoke(tmp_path, "--quick")
    assert res.exit_code == 0, res.output
    assert re.search(r"3 case\(s\), 3 criterion verdict\(s\), 3 window\(s\): about 3 judge call\(s\)", res.output)
    assert "formulaic-openers" in res.output and "CP4 NO (caught)" in res.output
