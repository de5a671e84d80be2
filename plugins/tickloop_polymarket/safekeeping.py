"""The Polymarket venue's part in crash recovery and reconciliation (mixed into
:class:`tickloop_polymarket.venue.PolymarketVenue`, which provides ``api`` and ``refusal``).

- ``lookup``: what the CLOB knows of a market order by its hash (the client id ``prepare``
  computed before posting): ``GET /data/order/{hash}`` (404: never posted), and its fills from
  ``GET /data/trades`` by the order's ``associate_trades``. Redeems and cancels cannot be asked
  about by id: the lookup says so, and reconciliation compares the account instead;
- ``account_view``: the wallet's positions from the Data API (``/positions``, at the current
  price) and its open orders from the CLOB;
- ``offset_action`` (a FAK sell; buying shares back is not offered) and ``cancel_action``: the
  orders ``tickloop reconcile close`` submits.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from tickloop.actions import Action, Execution, Fill
from tickloop.intents import Found, Lookup
from tickloop.reconcile import AccountView, OpenOrder
from tickloop_polymarket.api import ExchangeApi
from tickloop_polymarket.orders import cancel_orders, filled, num, sell_order, share_fill

if TYPE_CHECKING:
    from tickloop.sessions import Session
    from tickloop.wallets import Wallet

SHARE = Decimal("0.000001")


class Safekeeping:
    """Recovery and reconciliation methods of the venue."""

    api: ExchangeApi
    refusal: Callable[[Wallet | None], str | None]

    def lookup(self, action: Action, wallet: Wallet | None, client_id: str) -> Lookup:
        """What the CLOB knows of the market order whose hash is ``client_id``."""
        from py_clob_client_v2.clob_types import TradeParams
        from py_clob_client_v2.exceptions import PolyApiException

        if action.method != "market_order":
            return Lookup.unknown(f"Polymarket cannot be asked whether a {action.method} happened; tickloop"
                                  " reconcile compares the wallet's positions with the ledgers")
        if wallet is None or self.refusal(wallet) is not None:
            return Lookup.unknown("there is no key to ask the CLOB with")
        client = self.api.client(wallet)
        try:
            order = client.get_order(client_id)
        except PolyApiException as exc:
            if exc.status_code == 404:
                return Lookup.not_found(f"the CLOB does not know order {client_id}")
            raise
        if not order:
            return Lookup.not_found(f"the CLOB does not know order {client_id}")
        trades = [t for trade_id in order.get("associate_trades") or []
                  for t in client.get_trades(TradeParams(id=trade_id)) if t.get("id") == trade_id]
        shares = sum((Decimal(str(t["size"])) for t in trades), Decimal(0))
        usd = sum((Decimal(str(t["size"])) * Decimal(str(t["price"])) for t in trades), Decimal(0))
        if not trades and Decimal(str(order.get("size_matched") or 0)) > 0:  # trades not listed: the order's own
            shares = Decimal(str(order["size_matched"]))
            usd = shares * Decimal(str(order.get("price") or 0))
        status = str(order.get("status") or "").upper()
        token, side = str(order.get("asset_id") or action.params.get("tokenId")), str(order.get("side")).upper()
        if shares <= 0:
            if status == "LIVE":
                return Lookup(Found.RESTING, Execution(data=None, order_ids=(client_id,)))
            return Lookup(Found.CANCELLED, Execution.failed(f"order {client_id} ended {status.lower()} unfilled"))
        execution = filled(side, shares, usd.quantize(SHARE), client_id, self.api.market_info(token),
                           tx_hashes=[t.get("transaction_hash") for t in trades if t.get("transaction_hash")],
                           resting=status == "LIVE")
        found = Found.RESTING if status == "LIVE" else Found.FILLED if status == "MATCHED" else Found.CANCELLED
        return Lookup(found, execution)

    def account_view(self, wallet: Wallet | str) -> AccountView:
        """The wallet's outcome shares (Data API) and, with its key, its open orders (CLOB)."""
        address = wallet if isinstance(wallet, str) else wallet.address
        positions = []
        for token, row in sorted(self.api.data_positions(address).items()):
            size = Decimal(str(row.get("size") or 0)).quantize(SHARE)
            if size != 0:
                positions.append(share_fill(self.api.market_info(token), size, Decimal(str(row.get("curPrice") or 0))))
        orders: tuple[OpenOrder, ...] = ()
        if not isinstance(wallet, str) and self.refusal(wallet) is None:
            orders = tuple(OpenOrder(str(o["id"]), str(o["asset_id"]), str(o.get("outcome") or o["asset_id"]),
                                     (Decimal(str(o["original_size"])) - Decimal(str(o["size_matched"])))
                                     * (1 if str(o.get("side")).upper() == "BUY" else -1))
                           for o in self.api.open_orders(wallet))
        return AccountView(tuple(positions), orders)

    def offset_action(self, session: Session, position: Fill) -> Action:
        """A FAK market sell of ``position``'s shares (a negative size cannot be bought back
        exactly: a market buy spends dollars, not shares)."""
        if position.size <= 0:
            raise ValueError(f"buying back exactly {num(-position.size)} shares of {position.coin} is not possible"
                             " with a market order")
        return sell_order(session, position.asset_key, position.size, notional=position.size * position.price,
                          message=f"reconcile: sell {num(position.size)} shares the ledger did not hold")

    def cancel_action(self, session: Session, order: OpenOrder) -> Action:
        return cancel_orders(session, [order.order_id], f"reconcile: cancel Polymarket order {order.order_id}")
