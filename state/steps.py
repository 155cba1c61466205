"""Step keys: every pipeline step writes its row at most once, whatever replays it.

A killed run is resumed by replaying whatever the store says is unfinished,
so a step may run again after its row was committed (the kill came between
the commit and the next status change), and two processes may race for the
same step. Each step's table therefore has a unique key naming the step, and
its write is an insert that does nothing when the key is taken: the replay
finds the stored row, writes nothing, and records no second event.

The keys (the unique constraints in `models`):

    exchange          transcript, number
    assessment        transcript, stage (`initial`, then `after_fixup` once rubric fixups were made)
    windowanswer      transcript, stage, judge, first and last exchange, criterion
    criterionanswer   assessment, criterion, judge
    fixup             transcript, exchange, step (`artifact:trim`, `artifact:rewrite`, `criterion:<id>`)
    rejection         transcript, stage, exchanges kept

A persona is keyed by its id and enriched once; a review decision by its
fixup, decided once (`pending` is the only decision a decision may replace).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, and_, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable
from sqlmodel import Session, SQLModel

EXCHANGE_KEY = ("transcript_id", "number")
ASSESSMENT_KEY = ("transcript_id", "stage")
WINDOW_ANSWER_KEY = ("transcript_id", "stage", "judge", "first_exchange", "last_exchange", "criterion")
CRITERION_ANSWER_KEY = ("assessment_id", "criterion", "judge")
FIXUP_KEY = ("transcript_id", "exchange_number", "step")
REJECTION_KEY = ("transcript_id", "stage", "kept_exchanges")


@lru_cache(maxsize=64)
def _statement(dialect: str, table: Table, key: tuple[str, ...], returning: bool = True) -> Executable:
    """Built once per table: steps run on every exchange, and building a statement costs more than running it."""
    make = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stmt = make(table).on_conflict_do_nothing(index_elements=list(key))
    return stmt.returning(table.c.id) if returning and "id" in table.c else stmt


def insert_once(
    s: Session | Connection,
    model: type[SQLModel],
    values: dict[str, Any],
    key: Sequence[str],
    *,
    want_id: bool = True,
) -> int | None:
    """Insert a row unless its `key` columns are taken: the new row's id, or None when the step was there.

    SQLite and PostgreSQL do it in one statement (`ON CONFLICT DO NOTHING`);
    any other database tries the insert in a savepoint and, on a conflict,
    keeps the stored row (any other integrity error is raised). With
    `want_id=False` a new row gives 1, not its id: on SQLite the statement then
    needs no `RETURNING` and no fetch, which the every-exchange steps notice.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    bind = s.get_bind() if isinstance(s, Session) else s
    dialect = bind.dialect.name
    if dialect in ("sqlite", "postgresql"):
        # On PostgreSQL the row count read back 0 for a new row here (tests/test_steps_postgres.py): it keeps RETURNING.
        returning = "id" in table.c and (want_id or dialect == "postgresql")
        result = s.execute(_statement(dialect, table, tuple(key), returning), values)
        if returning:
            row = result.first()
            return row[0] if row else None
        return 1 if result.rowcount == 1 else None
    nested = s.begin_nested()
    try:
        result = s.execute(insert(table).values(**values))
    except IntegrityError:
        nested.rollback()
        taken = s.execute(select(1).select_from(table).where(and_(*(table.c[k] == values[k] for k in key))))
        if taken.first() is None:
            raise
        return None
    nested.commit()
    return result.inserted_primary_key[0] if want_id and "id" in table.c else 1
