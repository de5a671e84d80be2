"""The Hyperliquid venue's part in crash recovery and reconciliation (mixed into
:class:`tickloop_hyperliquid.venue.HyperliquidVenue`).

- ``lookup``: what the exchange knows of an order by its client order id (``orderStatus`` by
  cloid, then its fills in ``userFills``), or of a cancel by the order's status;
- ``account_view``: the account's positions (``clearinghouseState``, at the mid) and open orders
  (``frontendOpenOrders``);
- ``offset_action`` and ``cancel_action``: the orders ``tickloop reconcile close`` submits.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from tickloop.actions import CANCEL, ORDER, Action, Execution, Fill
from tickloop.intents import Found, Lookup
from tickloop.reconcile import AccountView, OpenOrder
from tickloop.wallets import HYPERLIQUID_USDC

from tickloop_hyperliquid import venue as hl  # a cycle: venue.py mixes this class in; used at call time

if TYPE_CHECKING:
    from tickloop.sessions import Session
    from tickloop.wallets import Wallet

    from tickloop_hyperliquid.venue import OrderPlan

D = Decimal
ZERO = D(0)


class Safekeeping:
    """Recovery and reconciliation methods of the venue (it provides ``info``, ``spec``,
    ``mids``, ``user_state``, ``user_fills``, ``open_orders``, ``account_size`` and ``_fill``)."""

    info: Any
    close_slippage: Decimal

    def lookup(self, action: Action, wallet: Wallet | None, client_id: str) -> Lookup:
        """What the exchange knows of an action sent under ``client_id``: an order by its cloid
        (``orderStatus``, and its fills from ``userFills``), a cancel by the order's status."""
        address = wallet.address if wallet is not None else action.wallet
        if action.method == "place_order":
            try:
                plan = hl.plan_order(action.params, self.spec(str(action.params.get("coin"))))
            except ValueError as exc:
                return Lookup.not_found(f"the order is invalid ({exc}), so the exchange never accepted it")
            if not hl.is_cloid(client_id):
                return Lookup.unknown(f"client id {client_id!r} is not a Hyperliquid cloid")
            return self._lookup_order(address, plan, client_id)
        if action.method == "delete_order":
            order_id = str(action.params.get("orderId"))
            if not order_id.isdigit():
                return Lookup.not_found(f"orderId {order_id!r} is not a Hyperliquid order id")
            found = self.info.query_order_by_oid(address, int(order_id))
            if not isinstance(found, dict) or found.get("status") != "order":
                return Lookup.not_found(f"Hyperliquid does not know order {order_id}")
            status = found["order"].get("status")
            if status == "open":
                return Lookup(Found.RESTING, Execution.failed(f"order {order_id} is still open: it was not cancelled"))
            return Lookup(Found.CANCELLED, Execution(data=None) if status == "canceled" else
                          Execution.failed(f"order {order_id} ended {status} before it could be cancelled"))
        return Lookup.unknown(f"Hyperliquid cannot be asked whether a {action.method} happened; check the account")

    def _lookup_order(self, address: str, plan: OrderPlan, client_id: str) -> Lookup:
        from hyperliquid.utils.types import Cloid

        found = self.info.query_order_by_cloid(address, Cloid.from_str(client_id))
        if not isinstance(found, dict) or found.get("status") != "order":
            if isinstance(found, dict) and found.get("status") == "unknownOid":
                return Lookup.not_found(f"Hyperliquid does not know cloid {client_id}")
            raise hl.VenueError(f"Hyperliquid answered orderStatus with {str(found)[:200]}")
        entry = found["order"]
        oid, status = str(entry["order"]["oid"]), entry.get("status")
        fills = [f for f in self.user_fills(address) if str(f.get("oid")) == oid]
        total = sum((D(str(f["sz"])) for f in fills), ZERO)
        booked: tuple[Fill, ...] = ()
        average = plan.price
        if total > 0:
            average = sum((D(str(f["sz"])) * D(str(f["px"])) for f in fills), ZERO) / total
            fee = sum((D(str(f.get("fee", "0"))) for f in fills), ZERO)
            booked = (self._fill(plan, oid, total, average, fee),)
        if status == "open":
            return Lookup(Found.RESTING, Execution(data=hl.order_info(plan, oid, price=average, filled=total,
                                                                    status="open"), fills=booked, order_ids=(oid,)))
        if total > 0:
            state = "filled" if total == plan.size else "partially_filled"
            return Lookup(Found.FILLED if status == "filled" else Found.CANCELLED,
                          Execution(data=hl.order_info(plan, oid, price=average, filled=total, status=state),
                                    fills=booked))
        return Lookup(Found.CANCELLED, Execution.failed(f"order {oid} ended {status} without a fill"))

    def account_view(self, wallet: Wallet | str) -> AccountView:
        """The account's perp positions (at the mid) and open orders, for reconciliation."""
        address = getattr(wallet, "address", wallet)
        mids = self.mids()
        positions = []
        for item in self.user_state(address).get("assetPositions", []):
            p = item.get("position", {})
            coin, size = p.get("coin"), D(str(p.get("szi", "0")))
            if size != 0:
                positions.append(Fill(venue=hl.NAME, network=hl.NETWORK, asset_key=coin, coin=coin, size=size,
                                      price=mids.get(coin) or D(str(p.get("entryPx"))), contract="perp",
                                      cash_network=HYPERLIQUID_USDC[0], cash_asset=HYPERLIQUID_USDC[1],
                                      cash_symbol="USDC", cash_decimals=6))
        orders = tuple(OpenOrder(str(o["oid"]), o["coin"], o["coin"],
                                 D(str(o["sz"])) * (1 if o.get("side") == "B" else -1))
                       for o in self.open_orders(address))
        return AccountView(tuple(positions), orders)

    def offset_action(self, session: Session, position: Fill) -> Action:
        """An IOC market order that trades ``position`` away (reduce-only when that only reduces
        the account's position)."""
        coin = position.coin
        spec = self.spec(coin)
        if spec is None:
            raise ValueError(f"{coin} is not listed on {hl.NETWORK}")
        size = hl.round_size(abs(position.size), int(spec["szDecimals"]), ROUND_DOWN)
        if size == 0:
            raise ValueError(f"{hl.num(position.size)} {coin} is below its lot size")
        selling = position.size > 0
        mid = self.mids()[coin]
        account = self.account_size(session.wallet, coin)
        reduces = account != 0 and (account > 0) == selling and abs(account) >= size
        price = mid * (1 - self.close_slippage) if selling else mid * (1 + self.close_slippage)
        params = {"coin": coin, "side": "sell" if selling else "buy", "size": float(size), "price": float(price),
                  "market": "perp", "type": "market", "reduceOnly": reduces}
        return Action(venue=hl.NAME, kind=ORDER, method="place_order", params=params, session_id=session.id,
                      wallet=session.wallet, notional_usd=size * mid,
                      message=f"reconcile: close {hl.num(position.size)} {coin} the ledger did not hold")

    def cancel_action(self, session: Session, order: OpenOrder) -> Action:
        return Action(venue=hl.NAME, kind=CANCEL, method="delete_order",
                      params={"orderId": order.order_id, "coin": order.coin}, session_id=session.id,
                      wallet=session.wallet, message=f"reconcile: cancel {order.coin} order {order.order_id}")
