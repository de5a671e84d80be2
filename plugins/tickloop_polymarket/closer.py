"""The Polymarket closer: flattens what an unwinding session still holds on Polymarket.

For the session's positions (its ledger's share of the wallet's outcome shares):

1. cancel the session's resting orders on those tokens (one ``cancel_orders`` action);
2. leave what cannot be sold, and report it: shares of a resolved market ("market resolved:
   redeem with redeem_positions"), of a closed market without a book, and dust below the book's
   ``min_order_size`` ("dust below the minimum order size 5");
3. sell the rest with fill-and-kill (FAK) market orders through the gateway, so manual mode turns
   them into suggestions (the closer stops there and reports their ids); after a partial fill it
   re-reads the session's ledger and sells what is left, up to ``close_attempts`` orders per
   position (``[venues.polymarket]``, default 3), ``close_pause_seconds`` apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tickloop.venues import CloseReport, Residue, suggestion_id
from tickloop_polymarket import NAME
from tickloop_polymarket.api import api_error
from tickloop_polymarket.orders import cancel_orders, num, sell_order

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.gateway import Gateway
    from tickloop.portfolio import Position
    from tickloop.sessions import Session
    from tickloop.wallets import Wallet
    from tickloop_polymarket.venue import PolymarketVenue


def factory(config: Config) -> PolymarketCloser:
    return PolymarketCloser()


class PolymarketCloser:
    def close(self, session: Session, positions: Sequence[Position], gateway: Gateway,
              log: Callable[[str], None]) -> CloseReport:
        venue: PolymarketVenue | None = gateway.venues.get(NAME)
        if venue is None:
            return CloseReport(NAME, residue=tuple(Residue(NAME, p.assetKey, p.coin, p.size,
                                                           "no polymarket venue is installed") for p in positions))
        wallet = gateway.wallet(session.wallet)
        refused = venue.refusal(wallet)
        if refused is not None:
            return CloseReport(NAME, residue=tuple(Residue(NAME, p.assetKey, p.coin, p.size, refused)
                                                   for p in positions))
        assert wallet is not None
        return _Close(venue, session, gateway, wallet, log).close(positions)


class _Close:
    """One closing of one session."""

    def __init__(self, venue: PolymarketVenue, session: Session, gateway: Gateway, wallet: Wallet,
                 log: Callable[[str], None]) -> None:
        self.venue, self.session, self.gateway, self.wallet, self.log = venue, session, gateway, wallet, log
        self.closed: list[str] = []
        self.residue: list[Residue] = []
        self.suggested: list[int] = []
        self.notes: list[str] = []

    def close(self, positions: Sequence[Position]) -> CloseReport:
        cancel = self._cancel_orders(positions)
        if cancel is not None:
            self.suggested.append(cancel)
            # Manual mode: selling before the cancel is approved could be blocked by what the
            # orders reserve; the sells are suggested now all the same, as people approve in order.
        for position in positions:
            self._close_position(position)
        return CloseReport(NAME, closed=tuple(self.closed), residue=tuple(self.residue),
                           suggested=tuple(self.suggested), notes=tuple(self.notes))

    def _cancel_orders(self, positions: Sequence[Position]) -> int | None:
        """Cancel the session's resting orders on the positions' tokens; a suggestion id in manual mode."""
        own = self.gateway.placed_orders(self.session.id, NAME)
        if not own:
            return None
        tokens = {p.assetKey for p in positions}
        try:
            ids = [o["id"] for o in self.venue.api.open_orders(self.wallet)
                   if o.get("id") in own and str(o.get("asset_id")) in tokens]
        except Exception as exc:
            self.notes.append(f"could not list open orders: {api_error(exc)}")
            self.log(f"polymarket: could not list the session's open orders: {api_error(exc)}")
            return None
        if not ids:
            return None
        result = self.gateway.submit(self.session, cancel_orders(
            self.session, ids, f"Close: cancel {len(ids)} resting Polymarket order(s)"))
        waiting = suggestion_id(result)
        if waiting is None:
            self.log(f"polymarket: cancelled {len(ids)} resting order(s)" if result.success
                     else f"polymarket: cancelling resting orders failed: {result.error}")
        return waiting

    def _close_position(self, p: Position) -> None:
        """Sell the position, or say why it is left: a resolved or closed market has no book."""
        try:
            book = self.venue.api.book(p.assetKey)
        except Exception as exc:
            self.residue.append(Residue(NAME, p.assetKey, p.coin, p.size,
                                        f"cannot read its order book: {api_error(exc)}"))
            return
        if book is None:
            try:
                info = self.venue.api.market_info(p.assetKey, fresh=True)
            except Exception as exc:
                info = {"resolved": False, "error": api_error(exc)}
            reason = "market resolved: redeem with redeem_positions" if info.get("resolved") else \
                "market closed: it has no order book to sell into"
            self.residue.append(Residue(NAME, p.assetKey, p.coin, p.size, reason))
            return
        self._sell(p, book)

    def _sell(self, p: Position, book: dict[str, Any]) -> None:
        """FAK sells of what the session holds, re-read from its ledger after each partial fill."""
        question = str((p.polymarketMetadata or {}).get("question") or "")
        label = f"{p.coin!r} on {question!r}" if question else repr(p.coin)
        minimum = Decimal(str(book.get("min_order_size") or 0))
        size = Decimal(p.size)
        attempts, last_error = 0, None
        while True:
            if size < minimum:
                self.residue.append(Residue(NAME, p.assetKey, p.coin, num(size),
                                            f"dust below the minimum order size {num(minimum)}"))
                return
            if attempts >= self.venue.close_attempts:
                self.residue.append(Residue(NAME, p.assetKey, p.coin, num(size), f"still open after {attempts}"
                                            f" sell order(s): {last_error or 'partly filled'}"))
                return
            if attempts:
                time.sleep(self.venue.close_pause)
            attempts += 1
            mark = _best_bid(book)
            result = self.gateway.submit(self.session, sell_order(
                self.session, p.assetKey, size, notional=size * mark if mark is not None else None,
                message=f"Close: sell {num(size)} shares of {label}"[:250]))
            waiting = suggestion_id(result)
            if waiting is not None:
                self.suggested.append(waiting)
                return
            if not result.success:
                last_error = result.error
            size = self._held(p.assetKey)
            if size == 0:
                self.closed.append(p.assetKey)
                self.log(f"polymarket: sold {p.size} shares of {label}; flat")
                return
            if result.success:
                self.log(f"polymarket: sold part of {label}; {num(size)} shares left")
                last_error = None
                with contextlib.suppress(Exception):  # the last book still bounds the next sell
                    book = self.venue.api.book(p.assetKey) or book

    def _held(self, token: str) -> Decimal:
        book = self.gateway.book(self.session.id)
        return next((h.size for h in book.holdings.values() if h.venue == NAME and h.asset_key == token), Decimal(0))


def _best_bid(book: dict[str, Any]) -> Decimal | None:
    bids = book.get("bids") or []
    return Decimal(str(bids[-1]["price"])) if bids else None  # listed last
