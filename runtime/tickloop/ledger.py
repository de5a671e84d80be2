"""The per-session ledger: allocations and fills, and the accounting that replays them.

The ledger is the source of truth for what a session holds: its portfolio is derived from it,
and unwind closes what it says is open. Several sessions can trade on one wallet (one netted
Hyperliquid account); the ledger keeps each session's share apart, because each fill is recorded
against the session whose action caused it.

Accounting, per instrument: fills that grow a position move its average entry price (size
weighted); fills that shrink it realise PnL against that average; a fill that crosses zero
closes the old side and opens the new one at its own price. Cash moves by realised PnL minus
fees for perps (margin), and by the traded value plus fees for spot and outcome shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tickloop.actions import Fill

ALLOCATION = "allocation"
FILL = "fill"
#: A fill-like entry booked by reconciliation (``tickloop reconcile adopt|close``): the difference
#: between the venue and the ledger, at the venue's price; ``note`` says why.
ADJUSTMENT = "adjustment"
#: Entries that move holdings.
TRADES = (FILL, ADJUSTMENT)

ZERO = Decimal(0)


@attrs.frozen
class LedgerEntry:
    """One ledger row. ``kind`` is ``allocation`` (cash given to the session at start, in raw
    units in ``amount``), ``fill`` (one trade, as a :class:`tickloop.actions.Fill`) or
    ``adjustment`` (a difference with the venue booked by reconciliation, replayed like a fill)."""

    session_id: int
    wallet: str
    kind: str
    at: datetime
    network: str
    asset_key: str
    amount: Decimal  # allocation: raw units; fill: signed size
    symbol: str | None = None
    decimals: int | None = None
    venue: str | None = None
    coin: str | None = None
    price: Decimal | None = None
    fee: Decimal = ZERO
    contract: str | None = None
    cash_network: str | None = None
    cash_asset: str | None = None
    cash_symbol: str | None = None
    cash_decimals: int | None = None
    order_id: str | None = None
    meta: dict[str, Any] | None = attrs.field(default=None, hash=False)
    note: str | None = None
    id: int | None = None

    @classmethod
    def allocation(cls, session_id: int, wallet: str, *, at: datetime, network: str, asset_key: str, amount_raw: int,
                   symbol: str | None = None, decimals: int | None = None) -> LedgerEntry:
        return cls(session_id=session_id, wallet=wallet, kind=ALLOCATION, at=at, network=network,
                   asset_key=asset_key, amount=Decimal(amount_raw), symbol=symbol, decimals=decimals)

    @classmethod
    def from_fill(cls, session_id: int, wallet: str, fill: Fill, *, at: datetime) -> LedgerEntry:
        return cls(session_id=session_id, wallet=wallet, kind=FILL, at=fill.at or at, network=fill.network,
                   asset_key=fill.asset_key, amount=Decimal(fill.size), venue=fill.venue, coin=fill.coin,
                   price=Decimal(fill.price), fee=Decimal(fill.fee), contract=fill.contract,
                   cash_network=fill.cash_network, cash_asset=fill.cash_asset, cash_symbol=fill.cash_symbol,
                   cash_decimals=fill.cash_decimals, order_id=fill.order_id, meta=fill.meta)

    @classmethod
    def adjustment(cls, session_id: int, wallet: str, fill: Fill, *, at: datetime, note: str) -> LedgerEntry:
        """``fill`` (the difference, at the venue's price) booked as an explicit adjustment."""
        return attrs.evolve(cls.from_fill(session_id, wallet, fill, at=at), kind=ADJUSTMENT, at=at, note=note)

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        m = row._mapping
        return cls(**{f.name: m[f.name] for f in attrs.fields(cls) if f.name in m})


@attrs.define
class Holding:
    """An open instrument while the ledger is replayed."""

    venue: str | None
    network: str
    asset_key: str
    coin: str
    contract: str
    size: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    last_price: Decimal | None = None
    meta: dict[str, Any] | None = None

    def apply(self, size: Decimal, price: Decimal) -> Decimal:
        """Add a fill of ``size`` at ``price``; returns the PnL it realised."""
        realized = ZERO
        if self.size == 0 or (self.size > 0) == (size > 0):
            total = self.size + size
            self.average_price = (self.average_price * abs(self.size) + price * abs(size)) / abs(total)
            self.size = total
        else:
            closed = min(abs(size), abs(self.size))
            direction = 1 if self.size > 0 else -1
            realized = (price - self.average_price) * closed * direction
            self.size += size
            if self.size == 0:
                self.average_price = ZERO
            elif (self.size > 0) != (direction > 0):  # crossed zero: the rest opens at this price
                self.average_price = price
        self.realized_pnl += realized
        self.last_price = price
        return realized


@attrs.define
class Cash:
    network: str
    asset_key: str
    symbol: str | None
    decimals: int | None  # None: not known yet (a venue's fills name it)
    amount: Decimal = ZERO  # in units of the asset, or raw units while decimals is None


@attrs.frozen
class Book:
    """A session's ledger replayed: cash per asset, holdings per instrument, totals."""

    cash: dict[tuple[str, str], Cash]
    holdings: dict[tuple[str, str], Holding]
    realized_pnl: Decimal
    fees: Decimal

    @classmethod
    def replay(cls, entries: Iterable[LedgerEntry]) -> Book:
        cash: dict[tuple[str, str], Cash] = {}
        holdings: dict[tuple[str, str], Holding] = {}
        realized_total = fees_total = ZERO
        for e in entries:
            if e.kind == ALLOCATION:
                funds = cash.setdefault((e.network, e.asset_key.lower()),
                                        Cash(e.network, e.asset_key, e.symbol, e.decimals))
                funds.amount += e.amount.scaleb(-(funds.decimals or 0))
                continue
            if e.kind not in TRADES:
                continue
            h = holdings.get((e.network, e.asset_key))
            if h is None:
                h = holdings[(e.network, e.asset_key)] = Holding(e.venue, e.network, e.asset_key, e.coin or e.asset_key,
                                                                 e.contract or "perp")
            price = e.price or ZERO
            realized = h.apply(e.amount, price)
            h.fees += e.fee
            if e.meta:
                h.meta = e.meta
            realized_total += realized
            fees_total += e.fee
            key = ((e.cash_network or e.network), (e.cash_asset or "").lower())
            c = cash.get(key)
            if c is None:
                c = cash[key] = Cash(key[0], e.cash_asset or "", e.cash_symbol, e.cash_decimals)
            elif c.decimals is None and e.cash_decimals is not None:
                # The allocation named an asset tickloop did not know; the venue knows its decimals.
                c.decimals, c.symbol = e.cash_decimals, c.symbol or e.cash_symbol
                c.amount = c.amount.scaleb(-e.cash_decimals)
            if h.contract == "perp":
                c.amount += realized - e.fee
            else:
                c.amount -= e.amount * price + e.fee
        return cls(cash, holdings, realized_total, fees_total)

    @classmethod
    def per_session(cls, entries: Iterable[LedgerEntry]) -> dict[int, Book]:
        """The books of the sessions whose entries these are (one ledger read, many sessions)."""
        by_session: dict[int, list[LedgerEntry]] = {}
        for entry in entries:
            by_session.setdefault(entry.session_id, []).append(entry)
        return {session_id: cls.replay(found) for session_id, found in by_session.items()}

    def open_holdings(self) -> list[Holding]:
        return [h for h in self.holdings.values() if h.size != 0]
