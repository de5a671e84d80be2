"""The Hyperliquid closer: flattens one session's share of a shared, netted account.

Hyperliquid keeps one net position per coin per account, and several sessions may trade on one
account, so the closer never uses ``market_close`` (which closes the account's whole position,
other sessions' exposure included). For one session it

1. books fills of its resting orders the ledger does not have yet, and cancels the orders it
   placed that are still open (never another session's);
2. for each position, sends an IOC order for exactly the session's ledger share, at the mid
   less (sells) or plus (buys) a slippage bound, **reduce-only** whenever that share only
   reduces the account's position. When other sessions hold the opposite side, closing this
   share moves the account away from zero (to what the other sessions hold), which a
   reduce-only order cannot do; then the order is a plain IOC, sent only when the account's
   position equals the sum of every session's ledger share on this wallet, so it lands exactly
   on the other sessions' exposure;
3. re-reads the ledger (fills are booked by the gateway) and the account, and retries what is
   left — partial fills, "could not immediately match", server errors — with the slippage
   doubled each time, until flat or ``close_attempts`` are spent;
4. reports what is still open as :class:`tickloop.venues.Residue`, with the reason.

Every order and cancel goes through ``gateway.submit``: in manual mode they become suggestions,
and the closer stops and returns their ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from tickloop.venues import CloseReport, Residue, suggestion_id
from tickloop_hyperliquid import NAME
from tickloop_hyperliquid.api import describe
from tickloop_hyperliquid.orders import NETWORK, ZERO, cancel_order, close_order, num, only_reduces, round_size
from tickloop_hyperliquid.venue import HyperliquidVenue

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.gateway import Gateway
    from tickloop.portfolio import Position
    from tickloop.sessions import Session

D = Decimal
MAX_SLIPPAGE = D("0.5")


class HyperliquidCloser:
    """The closer object (``factory(config)``)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def close(self, session: Session, positions: Sequence[Position], gateway: Gateway,
              log: Callable[[str], None]) -> CloseReport:
        venue = gateway.venues.get(NAME)
        if not isinstance(venue, HyperliquidVenue):
            residue = tuple(Residue(NAME, p.assetKey, p.coin, p.size, "the hyperliquid venue is not available")
                            for p in positions)
            return CloseReport(NAME, residue=residue)
        run = _Close(venue, session, gateway, log)
        return run.close([p for p in positions if (p.venue or NAME) == NAME])


class _Close:
    """One closing of one session."""

    def __init__(self, venue: HyperliquidVenue, session: Session, gateway: Gateway, log: Callable[[str], None]) -> None:
        self.venue, self.session, self.gateway, self.log = venue, session, gateway, log
        self.attempts = max(1, venue.close_attempts)
        self.suggested: list[int] = []
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"hyperliquid: {text}")

    def close(self, positions: Sequence[Position]) -> CloseReport:
        try:
            self.venue.sync_fills(self._wallet_sessions(), self.gateway)
        except Exception as exc:  # the ledger may miss late fills; the account check below catches drift
            self.note(f"could not check resting orders for late fills: {describe(exc)}")
        self._cancel_orders()
        closed: list[str] = []
        residue: list[Residue] = []
        for position in positions:
            outcome = self._close_position(position)
            if isinstance(outcome, Residue):
                residue.append(outcome)
            elif outcome:
                closed.append(position.assetKey)
        return CloseReport(NAME, closed=tuple(closed), residue=tuple(residue), suggested=tuple(self.suggested),
                           notes=tuple(self.notes))

    # -- orders --------------------------------------------------------------------------------

    def _cancel_orders(self) -> None:
        mine = self.gateway.placed_orders(self.session.id, NAME)
        if not mine:
            return
        try:
            live = [o for o in self.venue.api.open_orders(self.session.wallet) if str(o.get("oid")) in mine]
        except Exception as exc:
            self.note(f"could not list open orders to cancel: {describe(exc)}")
            return
        for order in live:
            oid, coin = str(order["oid"]), order["coin"]
            result = self.gateway.submit(self.session, cancel_order(self.session, oid, coin,
                                                                    f"unwind: cancel {coin} order {oid}"))
            suggestion = suggestion_id(result)
            if suggestion is not None:
                self.suggested.append(suggestion)
            elif result.success:
                self.log(f"hyperliquid: cancelled {coin} order {oid}")
            else:
                self.note(f"cancelling {coin} order {oid} failed: {result.error}")

    # -- positions -----------------------------------------------------------------------------

    def _wallet_sessions(self) -> list[Session]:
        """Every session that trades (or traded) on this session's wallet."""
        found = self.gateway.wallet_sessions(self.session.wallet)
        if not any(s.id == self.session.id for s in found):
            found.append(self.session)
        return found

    def _share(self, coin: str) -> Decimal:
        holding = self.gateway.book(self.session.id).holdings.get((NETWORK, coin))
        return holding.size if holding is not None else ZERO

    def _others(self, coin: str) -> Decimal:
        """What every other session on the wallet holds of ``coin`` by its ledger."""
        others = [s.id for s in self._wallet_sessions() if s.id != self.session.id]
        holdings = (book.holdings.get((NETWORK, coin)) for book in self.gateway.books(others).values())
        return sum((holding.size for holding in holdings if holding is not None), ZERO)

    def _flat(self, coin: str) -> bool:
        self.log(f"hyperliquid: {coin} is flat for session {self.session.id}")
        return True

    def _close_position(self, position: Position) -> Residue | bool:
        """True once the session's share of the position is flat; False when closing waits for
        a suggestion's approval; else what is left open."""
        coin = position.coin
        spec = self.venue.api.spec(coin)
        if spec is None:
            return Residue(NAME, position.assetKey, coin, position.size, f"{coin} is not listed on {NETWORK}")
        reason = "no attempt was made"
        for attempt in range(self.attempts):
            share = self._share(coin)
            if share == 0:
                return self._flat(coin)
            outcome = self._attempt(position, share, int(spec["szDecimals"]), attempt)
            if not isinstance(outcome, str):
                return outcome
            reason = outcome
        share = self._share(coin)
        if share == 0:
            return self._flat(coin)
        return Residue(NAME, position.assetKey, coin, num(share),
                       f"still open after {self.attempts} attempts (last: {reason})")

    def _attempt(self, position: Position, share: Decimal, sz_decimals: int, attempt: int) -> Residue | bool | str:
        """One closing order for ``share``: how it went (to retry what is left), a Residue when
        it cannot be ordered, False when it became a suggestion."""
        coin = position.coin
        size = round_size(abs(share), sz_decimals, ROUND_DOWN)
        if size == 0:
            return Residue(NAME, position.assetKey, coin, num(share),
                           f"below {coin}'s lot size ({sz_decimals} decimals); it cannot be ordered")
        if attempt:
            time.sleep(self.venue.close_retry_delay)
        try:
            mid = self.venue.api.mids()[coin]
            account = self.venue.api.account_size(self.session.wallet, coin)
        except Exception as exc:
            reason = f"cannot read the market or the account: {describe(exc)}"
            self.log(f"hyperliquid: closing {coin}, attempt {attempt + 1} of {self.attempts}: {reason}")
            return reason
        sized = self._order_size(position, share, size, account, sz_decimals, first=attempt == 0)
        if isinstance(sized, Residue):
            return sized
        size, reduces = sized
        selling = share > 0
        slippage = min(self.venue.close_slippage * (2 ** attempt), MAX_SLIPPAGE)
        result = self.gateway.submit(self.session, close_order(
            self.session, coin, size, selling=selling, mid=mid, slippage=slippage, reduce_only=reduces,
            message=f"unwind: close {num(share)} {coin}"))
        suggestion = suggestion_id(result)
        if suggestion is not None:
            self.suggested.append(suggestion)
            return False
        if not result.success:
            reason = result.error or "refused"
            self.log(f"hyperliquid: closing {coin}, attempt {attempt + 1} of {self.attempts}: {reason}")
            return reason
        filled = D(str(result.data.get("filled", 0))) if result.data is not None else ZERO
        self.log(f"hyperliquid: closing {coin}: {'sold' if selling else 'bought'} {num(filled)} of"
                 f" {num(size)} (attempt {attempt + 1}, slippage {num(slippage * 100)}%)")
        return "partially filled" if filled < size else "filled"

    def _order_size(self, position: Position, share: Decimal, size: Decimal, account: Decimal, sz_decimals: int, *,
                    first: bool) -> tuple[Decimal, bool] | Residue:
        """The size to order and whether it is reduce-only, given the account's net position; a
        Residue when the account and the ledgers disagree so that nothing can be closed safely."""
        coin = position.coin
        selling = share > 0
        if only_reduces(account, selling, size):
            return size, True
        expected = share + self._others(coin)
        if account == expected:
            if first:
                self.note(f"other sessions on {self.session.wallet} hold {num(expected - share)} {coin}, so"
                          f" closing this session's {num(share)} moves the account to their exposure; the"
                          " order is not reduce-only")
            return size, False
        # The account does not hold what the ledgers say: trading past its position could open
        # exposure nobody owns. Close only what it holds on this side.
        reducible = min(size, abs(account)) if account != 0 and (account > 0) == selling else ZERO
        reducible = round_size(reducible, sz_decimals, ROUND_DOWN)
        if reducible == 0:
            return Residue(NAME, position.assetKey, coin, num(share),
                           f"the account holds {num(account)} {coin} but the sessions' ledgers say"
                           f" {num(expected)}; not trading past the account's position")
        self.note(f"the account holds {num(account)} {coin} but the sessions' ledgers say"
                  f" {num(expected)}; closing only {num(reducible)}")
        return reducible, True


__all__ = ["HyperliquidCloser"]
