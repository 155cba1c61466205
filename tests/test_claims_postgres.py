"""The claims of test_claims.py on a real PostgreSQL server (`FOR UPDATE SKIP LOCKED`)."""

from __future__ import annotations

import pytest

from state.store import Store
from tests.test_claims import (  # noqa: F401 - collected again, on PostgreSQL
    test_a_dead_workers_claims_expire_and_are_taken_over,
    test_done_and_excluded_transcripts_are_not_claimed_and_a_release_frees_one,
    test_two_workers_claim_different_transcripts_until_none_is_free,
    test_workers_claiming_at_once_never_share_a_transcript,
)
from tests.test_migrations_postgres import pg_server, pg_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


@pytest.fixture
def store(pg_url: str):  # noqa: F811 - pg_url is the imported fixture
    store = Store(pg_url)
    yield store
    store.close()
