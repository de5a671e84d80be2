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

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tickloop.actions import CANCEL, ORDER, Action
from tickloop.venues import CloseReport, Residue

from tickloop_polymarket.venue import NAME, api_error, num

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.portfolio import Position
    from tickloop.sessions import Session
    from tickloop.venues import Gateway

    from tickloop_polymarket.venue import PolymarketVenue


def factory(config: Config) -> PolymarketCloser:
    return PolymarketCloser()


def _suggestion(result: Any) -> int | None:
    data = result.data if result.success else None
    if data is not None and hasattr(data, "get") and data.get("suggested"):
        return int(data["suggestionId"])
    return None


class PolymarketCloser:
    def close(self, session: Session, positions: Sequence[Position], gateway: Gateway,
              log: Callable[[str], None]) -> CloseReport:
        venue: PolymarketVenue | None = gateway.venues.get(NAME)
        if venue is None:
            return CloseReport(NAME, residue=tuple(Residue(NAME, p.assetKey, p.coin, p.size,
                                                           "no polymarket venue is installed") for p in positions))
        closed: list[str] = []
        residue: list[Residue] = []
        suggested: list[int] = []
        notes: list[str] = []
        wallet = gateway.wallet(session.wallet)
        refused = venue.refusal(wallet)
        if refused is not None:
            return CloseReport(NAME, residue=tuple(Residue(NAME, p.assetKey, p.coin, p.size, refused)
                                                   for p in positions))

        cancel = self._cancel_orders(session, positions, gateway, venue, wallet, log, notes)
        if cancel is not None:
            suggested.append(cancel)
            # Manual mode: selling before the cancel is approved could be blocked by what the
            # orders reserve; the sells are suggested now all the same, as people approve in order.

        for p in positions:
            label = f"{p.coin!r} on {self._question(p)!r}" if self._question(p) else repr(p.coin)
            try:
                book = venue.book(p.assetKey)
            except Exception as exc:
                residue.append(Residue(NAME, p.assetKey, p.coin, p.size, f"cannot read its order book: {api_error(exc)}"))
                continue
            if book is None:
                try:
                    info = venue.market_info(p.assetKey, fresh=True)
                except Exception as exc:
                    info = {"resolved": False, "error": api_error(exc)}
                reason = "market resolved: redeem with redeem_positions" if info.get("resolved") else \
                    "market closed: it has no order book to sell into"
                residue.append(Residue(NAME, p.assetKey, p.coin, p.size, reason))
                continue
            minimum = Decimal(str(book.get("min_order_size") or 0))
            size = Decimal(p.size)
            attempts, last_error = 0, None
            while True:
                if size < minimum:
                    residue.append(Residue(NAME, p.assetKey, p.coin, num(size),
                                           f"dust below the minimum order size {num(minimum)}"))
                    break
                if attempts >= venue.close_attempts:
                    residue.append(Residue(NAME, p.assetKey, p.coin, num(size),
                                           f"still open after {attempts} sell order(s): {last_error or 'partly filled'}"))
                    break
                if attempts:
                    time.sleep(venue.close_pause)
                attempts += 1
                mark = self._mark(book)
                action = Action(venue=NAME, kind=ORDER, method="market_order",
                                params={"tokenId": p.assetKey, "size": float(size), "side": "SELL", "orderType": "FAK"},
                                session_id=session.id, wallet=session.wallet,
                                notional_usd=size * mark if mark is not None else None,
                                message=f"Close: sell {num(size)} shares of {label}"[:250])
                result = gateway.submit(session, action)
                waiting = _suggestion(result)
                if waiting is not None:
                    suggested.append(waiting)
                    break
                if not result.success:
                    last_error = result.error
                size = self._held(gateway, session.id, p.assetKey)
                if size == 0:
                    closed.append(p.assetKey)
                    log(f"polymarket: sold {p.size} shares of {label}; flat")
                    break
                if result.success:
                    log(f"polymarket: sold part of {label}; {num(size)} shares left")
                    last_error = None
                    try:
                        book = venue.book(p.assetKey) or book
                    except Exception:
                        pass
        return CloseReport(NAME, closed=tuple(closed), residue=tuple(residue), suggested=tuple(suggested),
                           notes=tuple(notes))

    @staticmethod
    def _question(p: Position) -> str:
        return str((p.polymarketMetadata or {}).get("question") or "")

    @staticmethod
    def _mark(book: dict[str, Any]) -> Decimal | None:
        bids = book.get("bids") or []
        return Decimal(str(bids[-1]["price"])) if bids else None  # best bid (listed last)

    @staticmethod
    def _held(gateway: Gateway, session_id: int, token: str) -> Decimal:
        book = gateway.book(session_id)
        return next((h.size for h in book.holdings.values() if h.venue == NAME and h.asset_key == token), Decimal(0))

    @staticmethod
    def _cancel_orders(session: Session, positions: Sequence[Position], gateway: Gateway, venue: PolymarketVenue,
                       wallet: Any, log: Callable[[str], None], notes: list[str]) -> int | None:
        """Cancel the session's resting orders on the positions' tokens; a suggestion id in manual mode."""
        own = gateway.placed_orders(session.id, NAME)
        if not own:
            return None
        tokens = {p.assetKey for p in positions}
        try:
            ids = [o["id"] for o in venue.open_orders(wallet) if o.get("id") in own and str(o.get("asset_id")) in tokens]
        except Exception as exc:
            notes.append(f"could not list open orders: {api_error(exc)}")
            log(f"polymarket: could not list the session's open orders: {api_error(exc)}")
            return None
        if not ids:
            return None
        result = gateway.submit(session, Action(venue=NAME, kind=CANCEL, method="cancel_orders",
                                                params={"orderIds": ids}, session_id=session.id,
                                                wallet=session.wallet,
                                                message=f"Close: cancel {len(ids)} resting Polymarket order(s)"))
        waiting = _suggestion(result)
        if waiting is None:
            log(f"polymarket: cancelled {len(ids)} resting order(s)" if result.success
                else f"polymarket: cancelling resting orders failed: {result.error}")
        return waiting
