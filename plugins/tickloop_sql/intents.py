"""Intents and holds in the state store (the part of ``SqlStateStore`` that keeps money safe).

- An intent is inserted (``sending``) in its own transaction before the venue is called; its end
  is one ``UPDATE ... WHERE status = 'sending'`` in the same transaction as the ledger entries
  and resting orders of the answer, so an answer is booked once even when a recovering process
  races the sender: the loser's update matches no row and its transaction books nothing.
- A hold is a row per held session; placing or releasing one bumps the sessions revision, so a
  running ``serve`` reloads its schedule without it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import delete, insert, select, union, update

from tickloop.actions import Action
from tickloop.intents import SENDING, Intent, NewIntent
from tickloop.ledger import LedgerEntry
from tickloop.sessions import Hold
from tickloop.jsondata import from_data, to_data
from tickloop_sql.tables import holds, intents, ledger, orders, sessions


class IntentsAndHolds:
    """Mixed into :class:`tickloop_sql.store.SqlStateStore` (it provides the engine and notifier)."""

    engine: Any
    _writer: Any
    _notifier: Any
    _bump_revision: Any

    def begin_intent(self, new: NewIntent) -> Intent:
        row = {"session_id": new.session_id, "wallet": new.wallet, "venue": new.venue, "action": to_data(new.action),
               "client_id": new.client_id, "suggestion_id": new.suggestion_id, "owner": new.owner,
               "status": SENDING, "created_at": _utc(new.at)}
        with self._writer.begin() as conn:
            intent_id = conn.execute(insert(intents).values(row)).inserted_primary_key[0]
        return Intent(id=intent_id, session_id=new.session_id, wallet=new.wallet, venue=new.venue, action=new.action,
                      client_id=new.client_id, owner=new.owner, status=SENDING, created_at=row["created_at"],
                      suggestion_id=new.suggestion_id)

    def finish_intent(self, intent_id: int, *, status: str, at: datetime, entries: Sequence[LedgerEntry] = (),
                      orders: Sequence[tuple[str, str, int]] = (), result: Any = None,
                      error: str | None = None) -> bool:
        from tickloop_sql.store import book

        c = intents.c
        with self._writer.begin() as conn:
            changed = conn.execute(update(intents).where(c.id == intent_id, c.status == SENDING).values(
                status=status, finished_at=_utc(at), result=result, error=error)).rowcount
            if changed != 1:
                return False
            book(conn, entries, orders)
        return True

    def intents(self, *, status: str | None = None, session_id: int | None = None,
                suggestion_id: int | None = None, wallet: str | None = None, venue: str | None = None,
                after_id: int = 0, newest: bool = False, limit: int = 1000) -> list[Intent]:
        c = intents.c
        query = select(intents).where(c.id > after_id).order_by(c.id.desc() if newest else c.id).limit(limit)
        for column, value in ((c.status, status), (c.session_id, session_id), (c.suggestion_id, suggestion_id),
                              (c.wallet, wallet), (c.venue, venue)):
            if value is not None:
                query = query.where(column == value)
        with self.engine.connect() as conn:
            return [_intent(row) for row in conn.execute(query)]

    def trading_accounts(self) -> set[tuple[str, str]]:
        s, lg, o, i = sessions.c, ledger.c, orders.c, intents.c
        query = union(
            select(lg.wallet, lg.venue).where(lg.venue.is_not(None)).distinct(),
            select(s.wallet, o.venue).join_from(orders, sessions, o.session_id == s.id).distinct(),
            select(i.wallet, i.venue).distinct(),
        )
        with self.engine.connect() as conn:
            return {(wallet, venue) for wallet, venue in conn.execute(query)}

    def hold(self, session_id: int, *, reason: str, at: datetime) -> Hold:
        h = holds.c
        with self._writer.begin() as conn:
            found = conn.execute(select(h.since).where(h.session_id == session_id)).first()
            if found is None:
                since = _utc(at)
                conn.execute(insert(holds).values(session_id=session_id, reason=reason, since=since))
            else:
                since = found.since
                conn.execute(update(holds).where(h.session_id == session_id).values(reason=reason))
            conn.execute(self._bump_revision)
        self._notifier.notify()
        return Hold(session_id, reason, since)

    def release(self, session_id: int) -> bool:
        with self._writer.begin() as conn:
            removed = conn.execute(delete(holds).where(holds.c.session_id == session_id)).rowcount
            if removed:
                conn.execute(self._bump_revision)
        if removed:
            self._notifier.notify()
        return bool(removed)

    def holds(self) -> dict[int, Hold]:
        with self.engine.connect() as conn:
            return {row.session_id: Hold(row.session_id, row.reason, row.since)
                    for row in conn.execute(select(holds))}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the state store needs timezone-aware times")
    return value.astimezone(timezone.utc)


def _intent(row: Any) -> Intent:
    return Intent(id=row.id, session_id=row.session_id, wallet=row.wallet, venue=row.venue,
                  action=from_data(row.action, Action), client_id=row.client_id, owner=row.owner, status=row.status,
                  created_at=row.created_at, suggestion_id=row.suggestion_id, finished_at=row.finished_at,
                  result=row.result, error=row.error)
