"""Reconciliation's holds in the state store (the ``HoldStore`` part of ``SqlStateStore``).

A hold is a row per held session; placing or releasing one bumps the sessions revision, so a
running ``serve`` reloads its schedule without it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update

from tickloop.sessions import Hold
from tickloop_sql.connections import Connections
from tickloop_sql.sessions import BUMP_REVISION
from tickloop_sql.tables import holds, utc


class SqlHolds(Connections):
    """Holds by session id."""

    def hold(self, session_id: int, *, reason: str, at: datetime) -> Hold:
        h = holds.c
        with self._writer.begin() as conn:
            found = conn.execute(select(h.since).where(h.session_id == session_id)).first()
            if found is None:
                since = utc(at)
                conn.execute(insert(holds).values(session_id=session_id, reason=reason, since=since))
            else:
                since = found.since
                conn.execute(update(holds).where(h.session_id == session_id).values(reason=reason))
            conn.execute(BUMP_REVISION)
        self._notifier.notify()
        return Hold(session_id, reason, since)

    def release(self, session_id: int) -> bool:
        with self._writer.begin() as conn:
            removed = conn.execute(delete(holds).where(holds.c.session_id == session_id)).rowcount
            if removed:
                conn.execute(BUMP_REVISION)
        if removed:
            self._notifier.notify()
        return bool(removed)

    def holds(self) -> dict[int, Hold]:
        with self.engine.connect() as conn:
            return {row.session_id: Hold(row.session_id, row.reason, row.since)
                    for row in conn.execute(select(holds))}
