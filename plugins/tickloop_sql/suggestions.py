"""``SqlSuggestionStore``: suggestions in the state store's database (the default).

Every status change is one ``UPDATE ... WHERE status = 'pending'``: the database's row lock is
the compare-and-set, so concurrent approvals in threads or processes change the row once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from tickloop import suggestions as st
from tickloop.actions import Action
from tickloop.errors import NotFoundError
from tickloop.jsondata import from_data, to_data
from tickloop.suggestions import Suggestion
from tickloop_sql.connections import new_id
from tickloop_sql.store import SqlStateStore
from tickloop_sql.tables import suggestions, utc


class SqlSuggestionStore:
    """The :class:`tickloop.suggestions.SuggestionStore` on the state store's engine."""

    def __init__(self, store: SqlStateStore) -> None:
        self.engine = store.engine
        self._writer = store._writer
        # Matches the partial index ix_suggestions_pending: reads pending rows only.
        self._q_pending_sessions = select(suggestions.c.session_id).where(suggestions.c.status == st.PENDING).distinct()

    def create(self, action: Action, *, at: datetime, expires_at: datetime | None) -> Suggestion:
        row = {"session_id": action.session_id, "action": to_data(action), "status": st.PENDING,
               "created_at": utc(at), "expires_at": utc(expires_at) if expires_at is not None else None}
        with self._writer.begin() as conn:
            suggestion_id = new_id(conn.execute(insert(suggestions).values(row)))
        return Suggestion(id=suggestion_id, session_id=action.session_id, action=action, status=st.PENDING,
                          created_at=row["created_at"], expires_at=row["expires_at"])

    def get(self, suggestion_id: int) -> Suggestion:
        with self.engine.connect() as conn:
            row = conn.execute(select(suggestions).where(suggestions.c.id == suggestion_id)).first()
        if row is None:
            raise NotFoundError(f"suggestion {suggestion_id} does not exist")
        return _suggestion(row)

    def list(self, *, session_id: int | None = None, statuses: Iterable[str] | None = None,
             limit: int = 1000) -> list[Suggestion]:
        query = select(suggestions).order_by(suggestions.c.id.desc()).limit(limit)
        if session_id is not None:
            query = query.where(suggestions.c.session_id == session_id)
        if statuses is not None:
            query = query.where(suggestions.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [_suggestion(row) for row in conn.execute(query)]

    def decide(self, suggestion_id: int, to: str, *, at: datetime, by: str | None = None) -> Suggestion | None:
        c = suggestions.c
        at = utc(at)
        where = [c.id == suggestion_id, c.status == st.PENDING, c.deleted_at.is_(None)]
        if to != st.EXPIRED:
            where.append((c.expires_at.is_(None)) | (c.expires_at > at))
        with self._writer.begin() as conn:
            row = conn.execute(update(suggestions).where(*where).values(status=to, decided_at=at, decided_by=by)
                               .returning(*suggestions.c)).first()
        return _suggestion(row) if row is not None else None

    def finish(self, suggestion_id: int, to: str, *, at: datetime, result: Any = None,
               error: str | None = None) -> Suggestion:
        c = suggestions.c
        with self._writer.begin() as conn:
            row = conn.execute(update(suggestions).where(c.id == suggestion_id, c.status == st.APPROVED)
                               .values(status=to, executed_at=utc(at), result=result, error=error)
                               .returning(*suggestions.c)).first()
        if row is None:
            raise NotFoundError(f"suggestion {suggestion_id} is not approved; its execution cannot be recorded")
        return _suggestion(row)

    def delete_pending(self, session_ids: Iterable[int], *, at: datetime) -> int:
        ids = set(session_ids)
        if not ids:
            return 0
        # Called for every group of runs the scheduler starts, and almost always there is nothing
        # to delete: look first, on the (tiny) partial index of pending rows, without taking the
        # write lock. A suggestion created between the look and a run's start belongs to the run
        # that is ending, so the next run start deletes it.
        with self.engine.connect() as conn:
            pending = {row[0] for row in conn.execute(self._q_pending_sessions)}
        affected = sorted(ids & pending)
        if not affected:
            return 0
        c = suggestions.c
        with self._writer.begin() as conn:
            return conn.execute(update(suggestions).where(c.session_id.in_(affected), c.status == st.PENDING)
                                .values(status=st.DELETED, deleted_at=utc(at))).rowcount

    def count_pending(self, session_id: int) -> int:
        c = suggestions.c
        with self.engine.connect() as conn:
            return conn.execute(select(func.count())
                                .where(c.session_id == session_id, c.status == st.PENDING)).scalar_one()

    def close(self) -> None:
        pass  # the engine belongs to the state store


def _suggestion(row: Any) -> Suggestion:
    return Suggestion(id=row.id, session_id=row.session_id, action=from_data(row.action, Action), status=row.status,
                      created_at=row.created_at, expires_at=row.expires_at, decided_at=row.decided_at,
                      deleted_at=row.deleted_at, executed_at=row.executed_at, result=row.result, error=row.error,
                      decided_by=row.decided_by)
