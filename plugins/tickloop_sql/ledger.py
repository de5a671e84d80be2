"""The ledger and the orders sessions placed (the ``LedgerStore`` part of ``SqlStateStore``).

The ledger is append-only: allocations, fills and reconciliation's adjustments, amounts stored
as exact decimal text. An order id is recorded with the session that placed it (the first one
recorded wins), so closers cancel only their own session's orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select, union

from tickloop.ledger import LedgerEntry
from tickloop_sql.connections import CHUNK, Connections
from tickloop_sql.tables import intents, ledger, sessions
from tickloop_sql.tables import orders as orders_table


class SqlLedger(Connections):
    """Ledger entries, resting orders, and the accounts sessions traded on."""

    _q_ledger = (select(ledger).where(ledger.c.session_id.in_(bindparam("ids", expanding=True)))
                 .order_by(ledger.c.id))
    _q_ledger_since = (select(ledger.c.id, ledger.c.session_id).where(ledger.c.id > bindparam("after"))
                       .order_by(ledger.c.id))

    def record_ledger(self, entries: Sequence[LedgerEntry], *, orders: Sequence[tuple[str, str, int]] = ()) -> None:
        with self._writer.begin() as conn:
            book(conn, entries, orders)

    def ledger(self, session_ids: Sequence[int]) -> list[LedgerEntry]:
        if not session_ids:
            return []
        out = []
        with self.engine.connect() as conn:
            for start in range(0, len(session_ids), CHUNK):
                chunk = list(session_ids[start:start + CHUNK])
                for row in conn.execute(self._q_ledger, {"ids": chunk}):
                    out.append(ledger_entry(row))
        if len(session_ids) > CHUNK:
            out.sort(key=lambda e: e.id or 0)
        return out

    def ledger_sessions(self, after_id: int = 0) -> tuple[int, set[int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._q_ledger_since, {"after": after_id}).all()
        return (rows[-1][0] if rows else after_id), {row[1] for row in rows}

    def session_orders(self, session_id: int, venue: str | None = None) -> list[tuple[str, str]]:
        o = orders_table.c
        query = select(o.venue, o.order_id).where(o.session_id == session_id)
        if venue is not None:
            query = query.where(o.venue == venue)
        with self.engine.connect() as conn:
            return [(v, i) for v, i in conn.execute(query)]

    def trading_accounts(self) -> set[tuple[str, str]]:
        s, lg, o, i = sessions.c, ledger.c, orders_table.c, intents.c
        query = union(
            select(lg.wallet, lg.venue).where(lg.venue.is_not(None)).distinct(),
            select(s.wallet, o.venue).join_from(orders_table, sessions, o.session_id == s.id).distinct(),
            select(i.wallet, i.venue).distinct(),
        )
        with self.engine.connect() as conn:
            return {(wallet, venue) for wallet, venue in conn.execute(query)}


_DECIMALS = ("amount", "price", "fee")


def book(conn: Any, entries: Sequence[LedgerEntry], orders: Sequence[tuple[str, str, int]]) -> None:
    """Append ledger entries and record resting orders' sessions, in the caller's transaction."""
    if entries:
        conn.execute(insert(ledger), [ledger_row(e) for e in entries])
    o = orders_table.c
    for venue, order_id, session_id in orders:
        known = conn.execute(select(o.session_id).where(o.venue == venue, o.order_id == str(order_id))).first()
        if known is None:
            conn.execute(insert(orders_table), [{"venue": venue, "order_id": str(order_id), "session_id": session_id}])


def ledger_row(entry: LedgerEntry) -> dict[str, Any]:
    """The ``ledger`` row of ``entry`` (without its id)."""
    row = {name: getattr(entry, name) for name in ledger.c.keys() if name != "id"}  # noqa: SIM118 - names, not columns
    for name in _DECIMALS:
        if row[name] is not None:
            row[name] = format(row[name], "f")
    return row


def ledger_entry(row: Any) -> LedgerEntry:
    """The entry a ``ledger`` row holds."""
    m = dict(row._mapping)
    for name in _DECIMALS:
        if m[name] is not None:
            m[name] = Decimal(m[name])
    return LedgerEntry(**m)
