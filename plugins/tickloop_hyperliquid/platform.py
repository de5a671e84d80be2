"""``agent.platforms.hyperliquid``: Circuit's Hyperliquid methods and result shapes, for one run
of one session (see the Circuit SDK's ``HyperliquidApi``).

Several sessions may share one account, so reads are scoped to the session: positions and
balances come from its ledger (after booking late fills of its resting orders), orders are the
ones it placed. Mutating calls (``place_order``, ``delete_order``, ``transfer``) are checked here,
then become :class:`tickloop.actions.Action` objects for ``gateway.submit`` (auto: executed now;
manual: a suggestion executed on approval). No method raises into agent code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from tickloop.actions import CANCEL, ORDER, TRANSFER, Action
from tickloop.results import Data, Result
from tickloop.wallets import HYPERLIQUID_USDC
from tickloop_hyperliquid import NAME
from tickloop_hyperliquid.api import describe
from tickloop_hyperliquid.orders import NETWORK, ZERO, num, order_row, parse_expiry, plan_order

if TYPE_CHECKING:
    from tickloop.gateway import Gateway
    from tickloop.sessions import Session
    from tickloop_hyperliquid.venue import HyperliquidVenue

log = logging.getLogger("tickloop.hyperliquid")

D = Decimal
DEFAULT_LEVERAGE = 20


class Aliased(Data):
    """A result row that also answers the Circuit SDK's snake_case attribute names."""

    __slots__ = ()
    ALIASES: ClassVar[dict[str, str]] = {"price_usd": "priceUsd", "is_stale": "isStale"}

    def __getattr__(self, name: str) -> Any:
        if name in self.ALIASES:
            return self[self.ALIASES[name]]
        raise AttributeError(name)



def _guarded(method: Any) -> Any:
    """Agent-facing methods answer a failed Result instead of raising."""

    def call(self: HyperliquidApi, *args: Any, **kwargs: Any) -> Result:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            log.info("hyperliquid.%s failed: %s", method.__name__, describe(exc))
            return Result.fail(f"hyperliquid.{method.__name__} failed: {describe(exc)}")

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class HyperliquidApi:
    """``agent.platforms.hyperliquid`` for one run of one session (Circuit's method names and
    result shapes; see the Circuit SDK's ``HyperliquidApi``)."""

    def __init__(self, venue: HyperliquidVenue, session: Session, gateway: Gateway) -> None:
        self._venue = venue
        self._session = session
        self._gateway = gateway
        self._synced = False

    def _default_leverage(self, coin: str) -> Decimal:
        """Hyperliquid's default: 20x cross, or the coin's maximum when lower."""
        spec = self._venue.api.spec(coin) or {}
        return D(min(DEFAULT_LEVERAGE, int(spec.get("maxLeverage", DEFAULT_LEVERAGE))))

    def _leverages(self) -> dict[str, Decimal]:
        """The account's leverage per coin it holds (best effort)."""
        try:
            state = self._venue.api.user_state(self._session.wallet)
        except Exception:
            return {}
        out = {}
        for item in state.get("assetPositions", []):
            position = item.get("position", {})
            value = (position.get("leverage") or {}).get("value")
            if value:
                out[position.get("coin")] = D(str(value))
        return out

    def _sync(self) -> None:
        if not self._synced:
            self._venue.sync_fills([self._session], self._gateway)
            self._synced = True

    def _refusal(self) -> str | None:
        wallet = self._gateway.wallet(self._session.wallet)
        if wallet is not None:
            return self._venue.refusal(wallet, self._session.wallet)
        return None  # not added: the action fails at execution with the reason

    def _submit(self, kind: str, method: str, params: dict[str, Any], notional: Decimal | None,
                expires_at: datetime | None = None, message: str | None = None) -> Result:
        action = Action(venue=NAME, kind=kind, method=method, params=params, session_id=self._session.id,
                        wallet=self._session.wallet, notional_usd=notional, expires_at=expires_at,
                        message=message)
        self._synced = False  # what the session holds may change
        return self._gateway.submit(self._session, action)

    # -- mutating ------------------------------------------------------------------------------

    @_guarded
    def place_order(self, request: Mapping[str, Any]) -> Result:
        """Place a perp order: ``{coin, side, size, price, market, type, triggerPrice,
        reduceOnly, postOnly, message, expiresAt}``; auto mode answers ``HyperliquidOrderInfo``,
        manual mode a suggestion."""
        if hasattr(request, "model_dump"):
            request = request.model_dump(by_alias=True, exclude_unset=True)
        params = {k: v for k, v in dict(request).items() if v is not None}
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        try:
            plan = plan_order(params, self._venue.api.spec(str(params.get("coin"))))
            expires_at = parse_expiry(params.get("expiresAt"))
        except ValueError as exc:
            return Result.fail(f"place_order: {exc}")
        message = params.get("message")
        if message is not None and len(str(message)) > 250:
            return Result.fail("place_order: message must be at most 250 characters")
        return self._submit(ORDER, "place_order", params, plan.size * plan.price, expires_at,
                            str(message) if message is not None else None)

    @_guarded
    def delete_order(self, order_id: str, coin: str) -> Result:
        """Cancel an open order this session placed."""
        order_id = str(order_id)
        if order_id not in self._gateway.placed_orders(self._session.id, NAME):
            return Result.fail(f"delete_order: order {order_id} was not placed by session {self._session.id}")
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        return self._submit(CANCEL, "delete_order", {"orderId": order_id, "coin": coin}, None)

    @_guarded
    def transfer(self, request: Mapping[str, Any]) -> Result:
        """Move USDC between the account's spot and perp balances: ``{amount, toPerp}``."""
        if hasattr(request, "model_dump"):
            request = request.model_dump(by_alias=True, exclude_unset=True)
        params = {k: v for k, v in dict(request).items() if v is not None}
        try:
            amount = D(str(params.get("amount")))
            expires_at = parse_expiry(params.get("expiresAt"))
        except (InvalidOperation, ValueError) as exc:
            return Result.fail(f"transfer: {exc if isinstance(exc, ValueError) else 'amount must be a number'}")
        if not amount.is_finite() or amount <= 0 or not isinstance(params.get("toPerp"), bool):
            return Result.fail("transfer: amount must be a positive number and toPerp true or false")
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        return self._submit(TRANSFER, "transfer", params, amount, expires_at)

    # -- reads ---------------------------------------------------------------------------------

    @_guarded
    def positions(self, dex: str | None = None) -> Result:
        """The session's perp positions (its share of the account), as ``HyperliquidPosition``."""
        if dex not in (None, "", "perp"):
            return Result.ok([])
        self._sync()
        portfolio = self._gateway.portfolio(self._session.id)
        mine = [p for p in portfolio.positions if p.venue == NAME]
        if not mine:
            return Result.ok([])
        account: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(Exception):
            state = self._venue.api.user_state(self._session.wallet)
            account = {i["position"]["coin"]: i["position"] for i in state.get("assetPositions", [])}
        rows = []
        for p in mine:
            size = D(p.size)
            held = account.get(p.coin, {})
            value = (held.get("leverage") or {}).get("value")
            leverage = D(str(value)) if value else self._default_leverage(p.coin)
            mark = D(p.markPriceUsd) if p.markPriceUsd is not None else D(p.averageEntryPrice or "0")
            rows.append({"coin": p.coin, "side": "long" if size > 0 else "short", "size": num(abs(size)),
                         "entryPrice": p.averageEntryPrice or "0", "markPrice": num(mark),
                         "liquidationPrice": held.get("liquidationPx"),
                         "unrealizedPnl": p.unrealizedPnlUsd or "0", "leverage": num(leverage),
                         "marginUsed": num((abs(size) * mark / leverage).quantize(D("0.000001")))})
        return Result.ok(rows)

    @_guarded
    def open_orders(self) -> Result:
        """The session's orders still open on the exchange, as ``HyperliquidOrderInfo``."""
        owned = self._gateway.placed_orders(self._session.id, NAME)
        if not owned:
            return Result.ok([])
        return Result.ok([order_row(order, "open") for order in self._venue.api.open_orders(self._session.wallet)
                          if str(order.get("oid")) in owned])

    @_guarded
    def order(self, order_id: str) -> Result:
        """One order this session placed, as ``HyperliquidOrderInfo``."""
        order_id = str(order_id)
        if not order_id.isdigit() or order_id not in self._venue.owned_order_ids(self._session, self._gateway):
            return Result.fail(f"order: order {order_id} was not placed by session {self._session.id}")
        found = self._venue.api.info.query_order_by_oid(self._session.wallet, int(order_id))
        if not isinstance(found, dict) or found.get("status") != "order":
            return Result.fail(f"order: Hyperliquid does not know order {order_id}")
        return Result.ok(order_row(found["order"]["order"], found["order"]["status"]))

    @_guarded
    def orders(self) -> Result:
        """The session's orders, open and past, as ``HyperliquidHistoricalOrder``."""
        owned = self._venue.owned_order_ids(self._session, self._gateway)
        if not owned:
            return Result.ok([])
        rows = []
        for entry in self._venue.api.info.historical_orders(self._session.wallet) or []:
            order = entry.get("order", {})
            if str(order.get("oid")) not in owned:
                continue
            order_type = order.get("orderType", "Limit")
            if order_type == "Limit" and order.get("tif") == "Ioc":
                order_type = "Market"
            rows.append({**order_row(order, entry.get("status")), "timestamp": order.get("timestamp"),
                         "statusTimestamp": entry.get("statusTimestamp"), "orderType": order_type})
        return Result.ok(rows)

    @_guarded
    def order_fills(self) -> Result:
        """Fills of the session's orders, newest first, as ``HyperliquidFill``."""
        owned = self._venue.owned_order_ids(self._session, self._gateway)
        rows = [{"orderId": str(f["oid"]), "coin": f["coin"], "side": "buy" if f.get("side") == "B" else "sell",
                 "direction": f.get("dir", ""), "price": str(f["px"]), "size": str(f["sz"]),
                 "fee": str(f.get("fee", "0")), "timestamp": int(f.get("time", 0)),
                 "isCrossed": bool(f.get("crossed", False))}
                for f in self._venue.api.user_fills(self._session.wallet) if str(f.get("oid")) in owned]
        return Result.ok(rows)

    @_guarded
    def balances(self) -> Result:
        """``HyperliquidBalances``: ``perp`` is the session's share (its USDC in the ledger plus
        the unrealised PnL of its positions; margin at the account's leverage), ``spot`` the
        account's spot balances."""
        self._sync()
        portfolio = self._gateway.portfolio(self._session.id)
        cash = sum((D(b.valueUsd) for b in portfolio.balances
                    if (b.network, b.assetKey.lower()) == HYPERLIQUID_USDC and b.valueUsd is not None), ZERO)
        mine = [p for p in portfolio.positions if p.venue == NAME]
        leverages = self._leverages() if mine else {}
        unrealized = margin = ZERO
        for p in mine:
            unrealized += D(p.unrealizedPnlUsd or "0")
            mark = D(p.markPriceUsd or p.averageEntryPrice or "0")
            margin += abs(D(p.size)) * mark / leverages.get(p.coin, self._default_leverage(p.coin))
        value = cash + unrealized
        spot = []
        with contextlib.suppress(Exception):
            for b in (self._venue.api.info.spot_user_state(self._session.wallet) or {}).get("balances", []):
                stable = b.get("coin") == "USDC"
                spot.append({"coin": b.get("coin"), "tokenId": str(b.get("token")), "total": str(b.get("total")),
                             "hold": str(b.get("hold", "0")), "priceUsd": "1" if stable else "0",
                             "valueUsd": str(b.get("total")) if stable else "0", "decimals": 8})
        return Result.ok({"perp": {"accountValue": num(value.quantize(D("0.000001"))),
                                   "totalMarginUsed": num(margin.quantize(D("0.000001"))),
                                   "withdrawable": num(max(ZERO, value - margin).quantize(D("0.000001")))},
                          "spot": spot})

    @_guarded
    def midpoint_price(self, coin: str | list[str], dex: str | None = None) -> Result:
        """``HyperliquidMidpointPrice`` for one coin, or a list for a list of coins."""
        network = f"hypercore:{dex or 'perp'}"
        coins = [coin] if isinstance(coin, str) else list(coin)
        mids = self._venue.api.mids() if network == NETWORK else {}
        at = self._gateway.clock().isoformat()
        rows = [Aliased({"coin": c, "network": network, "priceUsd": num(mids[c]), "timestamp": at, "isStale": False})
                for c in coins if c in mids]
        if isinstance(coin, str):
            if not rows:
                return Result.fail(f"midpoint_price: no midpoint price for {coin} on {network}")
            return Result.ok(rows[0])
        return Result.ok(rows)

    @_guarded
    def liquidations(self, start_time: int | None = None) -> Result:
        """Liquidations of the account: none on the paper exchange; not available for a real
        exchange yet."""
        if self._venue.paper:
            return Result.ok([])
        return Result.fail("liquidations: not available in tickloop's hyperliquid venue yet")


__all__ = ["HyperliquidApi"]
