"""``agent.portfolio``: what a session holds, as Circuit's ``SessionPortfolio`` shapes it.

Derived from the session's ledger (:mod:`tickloop.ledger`) and snapshotted when a run starts:
fills that land during the run show in the next run's portfolio, never in this one. Field names
are Circuit's (camelCase), so SDK agent code reads them unchanged; numbers are strings, as in
the SDK's models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from tickloop.ledger import Book, LedgerEntry


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal as plain text without exponent or trailing zeros (``-0`` is ``0``); None stays None."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@attrs.frozen
class Balance:
    """A fungible holding (``SessionBalance``): cash, spot tokens."""

    network: str
    assetKey: str
    tokenAddress: str
    tokenId: str | None
    symbol: str | None
    decimals: int
    amountRaw: str
    valueUsd: str | None
    assetClass: str  # cash | spot | perp | staking


@attrs.frozen
class Position:
    """An open exposure (``SessionPosition``): a perp (``size`` signed) or outcome shares."""

    network: str
    assetKey: str
    coin: str
    size: str
    averageEntryPrice: str | None
    markPriceUsd: str | None
    unrealizedPnlUsd: str | None
    polymarketMetadata: dict[str, Any] | None = attrs.field(default=None, hash=False)
    #: the venue that holds it (not a Circuit field; closers are chosen by it)
    venue: str | None = None


@attrs.frozen
class Portfolio:
    """A snapshot of a session's balances and positions, taken at run start."""

    balances: tuple[Balance, ...] = ()
    positions: tuple[Position, ...] = ()

    @classmethod
    def empty(cls) -> Portfolio:
        return cls()

    @classmethod
    def from_ledger(cls, entries: Iterable[LedgerEntry],
                    marks: Mapping[tuple[str, str], Decimal] | None = None) -> Portfolio:
        from tickloop.ledger import Book

        return cls.from_book(Book.replay(entries), marks)

    @classmethod
    def from_book(cls, book: Book, marks: Mapping[tuple[str, str], Decimal] | None = None) -> Portfolio:
        """The portfolio of a replayed ledger; ``marks`` are current prices by (network,
        asset_key), else each instrument is marked at its last fill price."""
        marks = marks or {}
        balances = []
        for c in book.cash.values():
            known = c.decimals is not None
            raw = int((c.amount.scaleb(c.decimals or 0)).to_integral_value())
            # Cash is valued 1:1 in USD (stablecoins) only when its decimals are known.
            balances.append(Balance(network=c.network, assetKey=c.asset_key, tokenAddress=c.asset_key, tokenId=None,
                                    symbol=c.symbol, decimals=c.decimals or 0, amountRaw=str(raw),
                                    valueUsd=decimal_text(c.amount) if known else None, assetClass="cash"))
        positions = []
        for h in book.open_holdings():
            mark = marks.get((h.network, h.asset_key), h.last_price)
            unrealized = (mark - h.average_price) * h.size if mark is not None else None
            positions.append(Position(network=h.network, assetKey=h.asset_key, coin=h.coin,
                                      size=decimal_text(h.size) or "0",
                                      averageEntryPrice=decimal_text(h.average_price), markPriceUsd=decimal_text(mark),
                                      unrealizedPnlUsd=decimal_text(unrealized),
                                      polymarketMetadata=h.meta if h.contract == "spot" and h.meta else None,
                                      venue=h.venue))
        return cls(tuple(balances), tuple(positions))

    def select(self, assets: Iterable[str] | None) -> Portfolio:
        """The positions whose ``assetKey`` or ``coin`` is in ``assets`` (all for None); balances stay."""
        if assets is None:
            return self
        wanted = {a.lower() for a in assets}
        return attrs.evolve(self, positions=tuple(p for p in self.positions
                                                  if p.assetKey.lower() in wanted or p.coin.lower() in wanted))

    def to_dict(self) -> dict[str, list[Any]]:
        return {"balances": [attrs.asdict(b) for b in self.balances],
                "positions": [attrs.asdict(p) for p in self.positions]}
