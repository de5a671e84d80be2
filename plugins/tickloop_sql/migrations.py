"""The state store's schema brought up to date when a store opens: tables created, columns added.

Additive only, so a database an older tickloop wrote opens in a newer one: missing tables are
created, and every column added since the first release is nullable, so old rows stay valid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from tickloop_sql.tables import SESSIONS_REVISION, meta, metadata


def create_schema(writer: Engine) -> None:
    """Create what is missing (tables, columns, the sessions revision) in one write transaction."""
    with writer.begin() as conn:
        metadata.create_all(conn)
        _add_missing_columns(conn)
        found = conn.execute(select(meta.c.value).where(meta.c.key == SESSIONS_REVISION)).first()
        if found is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(meta).values(key=SESSIONS_REVISION, value=0))
            except IntegrityError:  # another process created it meanwhile (PostgreSQL)
                pass


def _add_missing_columns(conn: Any) -> None:
    """Add columns a newer tickloop defines to tables an older one created."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}'))
