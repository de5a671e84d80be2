"""The Hyperliquid venue's part in crash recovery and reconciliation (mixed into
:class:`tickloop_hyperliquid.venue.HyperliquidVenue`, which provides ``api`` and ``close_slippage``).

- ``lookup``: what the exchange knows of an order by its client order id (``orderStatus`` by
  cloid, then its fills in ``userFills``), or of a cancel by the order's status;
- ``account_view``: the account's positions (``clearinghouseState``, at the mid) and open orders
  (``frontendOpenOrders``);
- ``offset_action`` and ``cancel_action``: the orders ``tickloop reconcile close`` submits.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from tickloop.actions import Action, Execution, Fill
from tickloop.intents import Found, Lookup
from tickloop.reconcile import AccountView, OpenOrder
from tickloop_hyperliquid.api import ExchangeApi, VenueError
from tickloop_hyperliquid.orders import (
    NETWORK,
    ZERO,
    OrderPlan,
    cancel_order,
    close_order,
    is_cloid,
    num,
    only_reduces,
    order_info,
    perp_fill,
    plan_order,
    round_size,
)

if TYPE_CHECKING:
    from tickloop.sessions import Session
    from tickloop.wallets import Wallet

D = Decimal


class Safekeeping:
    """Recovery and reconciliation methods of the venue."""

    api: ExchangeApi
    close_slippage: Decimal

    def lookup(self, action: Action, wallet: Wallet | None, client_id: str) -> Lookup:
        """What the exchange knows of an action sent under ``client_id``: an order by its cloid
        (``orderStatus``, and its fills from ``userFills``), a cancel by the order's status."""
        address = wallet.address if wallet is not None else action.wallet
        if action.method == "place_order":
            try:
                plan = plan_order(action.params, self.api.spec(str(action.params.get("coin"))))
            except ValueError as exc:
                return Lookup.not_found(f"the order is invalid ({exc}), so the exchange never accepted it")
            if not is_cloid(client_id):
                return Lookup.unknown(f"client id {client_id!r} is not a Hyperliquid cloid")
            return self._lookup_order(address, plan, client_id)
        if action.method == "delete_order":
            order_id = str(action.params.get("orderId"))
            if not order_id.isdigit():
                return Lookup.not_found(f"orderId {order_id!r} is not a Hyperliquid order id")
            found = self.api.info.query_order_by_oid(address, int(order_id))
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

        found = self.api.info.query_order_by_cloid(address, Cloid.from_str(client_id))
        if not isinstance(found, dict) or found.get("status") != "order":
            if isinstance(found, dict) and found.get("status") == "unknownOid":
                return Lookup.not_found(f"Hyperliquid does not know cloid {client_id}")
            raise VenueError(f"Hyperliquid answered orderStatus with {str(found)[:200]}")
        entry = found["order"]
        oid, status = str(entry["order"]["oid"]), entry.get("status")
        fills = [f for f in self.api.user_fills(address) if str(f.get("oid")) == oid]
        total = sum((D(str(f["sz"])) for f in fills), ZERO)
        booked: tuple[Fill, ...] = ()
        average = plan.price
        if total > 0:
            average = sum((D(str(f["sz"])) * D(str(f["px"])) for f in fills), ZERO) / total
            fee = sum((D(str(f.get("fee", "0"))) for f in fills), ZERO)
            booked = (plan.fill(oid, total, average, fee),)
        if status == "open":
            opened = order_info(plan, oid, price=average, filled=total, status="open")
            return Lookup(Found.RESTING, Execution(data=opened, fills=booked, order_ids=(oid,)))
        if total > 0:
            state = "filled" if total == plan.size else "partially_filled"
            return Lookup(Found.FILLED if status == "filled" else Found.CANCELLED,
                          Execution(data=order_info(plan, oid, price=average, filled=total, status=state),
                                    fills=booked))
        return Lookup(Found.CANCELLED, Execution.failed(f"order {oid} ended {status} without a fill"))

    def account_view(self, wallet: Wallet | str) -> AccountView:
        """The account's perp positions (at the mid) and open orders, for reconciliation."""
        address = wallet if isinstance(wallet, str) else wallet.address
        mids = self.api.mids()
        positions = []
        for item in self.api.user_state(address).get("assetPositions", []):
            p = item.get("position", {})
            coin, size = p.get("coin"), D(str(p.get("szi", "0")))
            if size != 0:
                positions.append(perp_fill(coin, size, mids.get(coin) or D(str(p.get("entryPx")))))
        orders = tuple(OpenOrder(str(o["oid"]), o["coin"], o["coin"],
                                 D(str(o["sz"])) * (1 if o.get("side") == "B" else -1))
                       for o in self.api.open_orders(address))
        return AccountView(tuple(positions), orders)

    def offset_action(self, session: Session, position: Fill) -> Action:
        """An IOC market order that trades ``position`` away (reduce-only when that only reduces
        the account's position)."""
        coin = position.coin
        spec = self.api.spec(coin)
        if spec is None:
            raise ValueError(f"{coin} is not listed on {NETWORK}")
        size = round_size(abs(position.size), int(spec["szDecimals"]), ROUND_DOWN)
        if size == 0:
            raise ValueError(f"{num(position.size)} {coin} is below its lot size")
        selling = position.size > 0
        mid = self.api.mids()[coin]
        reduces = only_reduces(self.api.account_size(session.wallet, coin), selling, size)
        return close_order(session, coin, size, selling=selling, mid=mid, slippage=self.close_slippage,
                           reduce_only=reduces,
                           message=f"reconcile: close {num(position.size)} {coin} the ledger did not hold")

    def cancel_action(self, session: Session, order: OpenOrder) -> Action:
        return cancel_order(session, order.order_id, order.coin,
                            f"reconcile: cancel {order.coin} order {order.order_id}")
