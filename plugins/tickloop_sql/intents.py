"""Intents in the state store (the ``IntentStore`` part of ``SqlStateStore``): what keeps money safe.

An intent is inserted (``sending``) in its own transaction before the venue is called; its end is
one ``UPDATE ... WHERE status = 'sending'`` in the same transaction as the ledger entries and
resting orders of the answer, so an answer is booked once even when a recovering process races
the sender: the loser's update matches no row and its transaction books nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from tickloop.actions import Action
from tickloop.intents import SENDING, Intent, NewIntent
from tickloop.jsondata import from_data, to_data
from tickloop.ledger import LedgerEntry
from tickloop_sql.connections import Connections, new_id
from tickloop_sql.ledger import book
from tickloop_sql.tables import intents, utc


class SqlIntents(Connections):
    """Intents: begun before an action is sent, settled once."""

    def begin_intent(self, new: NewIntent) -> Intent:
        row = {"session_id": new.session_id, "wallet": new.wallet, "venue": new.venue, "action": to_data(new.action),
               "client_id": new.client_id, "suggestion_id": new.suggestion_id, "owner": new.owner,
               "status": SENDING, "created_at": utc(new.at)}
        with self._writer.begin() as conn:
            intent_id = new_id(conn.execute(insert(intents).values(row)))
        return Intent(id=intent_id, session_id=new.session_id, wallet=new.wallet, venue=new.venue, action=new.action,
                      client_id=new.client_id, owner=new.owner, status=SENDING, created_at=row["created_at"],
                      suggestion_id=new.suggestion_id)

    def finish_intent(self, intent_id: int, *, status: str, at: datetime, entries: Sequence[LedgerEntry] = (),
                      orders: Sequence[tuple[str, str, int]] = (), result: Any = None,
                      error: str | None = None) -> bool:
        c = intents.c
        with self._writer.begin() as conn:
            changed = conn.execute(update(intents).where(c.id == intent_id, c.status == SENDING).values(
                status=status, finished_at=utc(at), result=result, error=error)).rowcount
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


def _intent(row: Any) -> Intent:
    return Intent(id=row.id, session_id=row.session_id, wallet=row.wallet, venue=row.venue,
                  action=from_data(row.action, Action), client_id=row.client_id, owner=row.owner, status=row.status,
                  created_at=row.created_at, suggestion_id=row.suggestion_id, finished_at=row.finished_at,
                  result=row.result, error=row.error)
