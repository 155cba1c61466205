"""The step keys on a real PostgreSQL server: the same writes, made twice, leave one row.

`ON CONFLICT DO NOTHING … RETURNING` is spelled by each dialect, so every
test of `test_steps.py` that writes to the store runs again here, on a
throwaway cluster (the one `test_migrations_postgres.py` starts; skipped
only where PostgreSQL's programs are not installed), plus the upgrade of a
workspace whose replays left duplicated steps.
"""

from __future__ import annotations

import pytest

from state.store import Store
from tests.test_migrations_postgres import pg_server, pg_url  # noqa: F401 - fixtures
from tests.test_steps import (  # noqa: F401 - collected again, on PostgreSQL
    check_replayed_steps_upgraded,
    previous_release_with_replayed_steps,
    test_a_bad_move_is_refused_with_what_is_allowed,
    test_accepted_fixup_is_recorded_and_applied_once,
    test_assessment_and_its_consequences_are_written_once,
    test_assessment_moving_to_fixing_carries_its_meta_in_the_same_write,
    test_assessor_asks_only_for_the_verdicts_it_does_not_have,
    test_exchange_halves_written_twice_keep_the_first,
    test_fixup_steps_of_one_exchange_are_told_apart,
    test_insert_once_elsewhere_keeps_the_stored_row_and_raises_other_conflicts,
    test_judging_a_transcript_again_at_the_same_stage_is_refused_not_lost,
    test_persona_is_enriched_once_and_its_step_recorded_once,
    test_rejection_is_recorded_once,
    test_resumed_rubric_stage_neither_asks_nor_rewrites_again,
    test_review_decision_is_made_once,
    test_staying_put_writes_no_event,
    test_truncation_is_made_once_and_keeps_what_it_cut,
    test_window_answer_is_stored_once,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def store(pg_url: str):  # noqa: F811 - pg_url is the imported fixture
    """The tests above take `store`: here it is a fresh PostgreSQL database."""
    store = Store(pg_url)
    yield store
    store.close()


def test_a_postgresql_database_from_before_the_keys_is_upgraded_with_every_row(pg_url: str):  # noqa: F811
    previous_release_with_replayed_steps(pg_url)
    store = Store(pg_url)
    try:
        check_replayed_steps_upgraded(store)
    finally:
        store.close()
