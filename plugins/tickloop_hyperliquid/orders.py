"""Hyperliquid order wire data: a Circuit order request checked and rounded into the SDK's
arguments (:func:`plan_order`), the closing and cancelling actions closers and reconciliation
send, the exchange's orders as Circuit's ``HyperliquidOrderInfo`` rows, and the perp fills the
ledger books.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from tickloop.actions import CANCEL, ORDER, Action, Fill
from tickloop.portfolio import decimal_text
from tickloop.wallets import HYPERLIQUID_USDC
from tickloop_hyperliquid import NAME

if TYPE_CHECKING:
    from tickloop.sessions import Session

NETWORK = "hypercore:perp"
D = Decimal
ZERO = D(0)
#: The taker fee assumed when the exchange's fill record cannot be read (Hyperliquid's base tier).
TAKER_FEE = D("0.00045")
ORDER_TYPES = ("market", "limit", "stop", "take_profit")


def is_cloid(value: Any) -> bool:
    """Whether ``value`` is a Hyperliquid client order id: ``0x`` and 32 hex digits."""
    if not isinstance(value, str) or len(value) != 34 or not value.startswith("0x"):
        return False
    try:
        int(value[2:], 16)
    except ValueError:
        return False
    return True


def num(value: Any) -> str:
    """A number as the Circuit SDK's string fields hold it ("0.5", "60000")."""
    return decimal_text(D(str(value))) or "0"


def round_size(size: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return size.quantize(D(1).scaleb(-sz_decimals), rounding)


def round_price(price: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """A valid perp price: at most 5 significant figures and ``6 - szDecimals`` decimals
    (integers are always valid), rounded in ``rounding``'s direction."""
    if price <= 0:
        return price
    if price == price.to_integral_value():
        return price.quantize(D(1))
    places = min(6 - sz_decimals, max(0, 4 - price.adjusted()))
    rounded = price.quantize(D(1).scaleb(-places), rounding)
    if rounded.adjusted() > price.adjusted() and places > 0:  # 99999.5 -> 100000: one figure more
        rounded = price.quantize(D(1).scaleb(-(places - 1)), rounding)
    return rounded


def perp_fill(coin: str, size: Decimal, price: Decimal, *, fee: Decimal = ZERO, order_id: str | None = None) -> Fill:
    """A fill (or a position) of ``size`` (signed) ``coin`` perps, against the account's USDC."""
    return Fill(venue=NAME, network=NETWORK, asset_key=coin, coin=coin, size=size, price=price, fee=fee,
                contract="perp", cash_network=HYPERLIQUID_USDC[0], cash_asset=HYPERLIQUID_USDC[1],
                cash_symbol="USDC", cash_decimals=6, order_id=order_id)


@attrs.frozen
class OrderPlan:
    """A Circuit order request checked and turned into the SDK's arguments."""

    coin: str
    is_buy: bool
    size: Decimal
    price: Decimal
    order_type: dict[str, Any]
    reduce_only: bool
    kind: str

    @property
    def side(self) -> str:
        return "buy" if self.is_buy else "sell"

    def fill(self, order_id: str, size: Decimal, price: Decimal, fee: Decimal) -> Fill:
        """The fill of ``size`` (unsigned) of this order at the average ``price``."""
        return perp_fill(self.coin, size if self.is_buy else -size, price, fee=fee, order_id=order_id)


def _numbers(request: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    try:
        size, price = D(str(request.get("size"))), D(str(request.get("price")))
    except InvalidOperation:
        raise ValueError(f"size and price must be numbers, got {request.get('size')!r} and {request.get('price')!r}") \
            from None
    if not size.is_finite() or size <= 0 or not price.is_finite() or price <= 0:
        raise ValueError("size and price must be positive numbers (for market orders, price is the worst price"
                         " accepted)")
    return size, price


def _checked_kind(request: Mapping[str, Any], spec: Mapping[str, Any] | None) -> str:
    """The order's type, after checking its coin, market and side; ValueError says what is wrong."""
    coin = request.get("coin")
    if not isinstance(coin, str) or not coin:
        raise ValueError("coin is required (e.g. \"BTC\")")
    market = request.get("market", "perp")
    if market == "spot" or "/" in coin:
        raise ValueError("spot orders are not supported by tickloop's hyperliquid venue yet (perp only)")
    if market not in ("perp", None):
        raise ValueError(f"market must be \"perp\" or \"spot\", got {market!r}")
    if spec is None:
        raise ValueError(f"unknown coin {coin!r} on {NETWORK}")
    if request.get("side") not in ("buy", "sell"):
        raise ValueError(f"side must be \"buy\" or \"sell\", got {request.get('side')!r}")
    kind = request.get("type") or "market"
    if kind not in ORDER_TYPES:
        raise ValueError(f"type must be one of {', '.join(ORDER_TYPES)}, got {kind!r}")
    return str(kind)


def plan_order(request: Mapping[str, Any], spec: Mapping[str, Any] | None) -> OrderPlan:
    """Check a ``place_order`` request (Circuit's shape) against the coin's rules; raises
    ValueError with the reason. Market orders become IOC limit orders at ``price`` (the
    slippage bound, rounded outward to the tick); sizes are rounded to the lot (down for
    reduce-only orders, which must never exceed the position)."""
    kind = _checked_kind(request, spec)
    assert spec is not None
    coin = str(request["coin"])
    size, price = _numbers(request)
    is_buy = request.get("side") == "buy"
    reduce_only = bool(request.get("reduceOnly", False))
    sz_decimals = int(spec["szDecimals"])
    rounded = round_size(size, sz_decimals, ROUND_DOWN if reduce_only else ROUND_HALF_EVEN)
    if rounded <= 0:
        raise ValueError(f"size {size} rounds to 0 at {coin}'s lot size ({sz_decimals} decimals)")
    outward = ROUND_UP if is_buy else ROUND_DOWN
    if kind == "market":
        order_type: dict[str, Any] = {"limit": {"tif": "Ioc"}}
        limit = round_price(price, sz_decimals, outward)
    elif kind == "limit":
        order_type = {"limit": {"tif": "Alo" if request.get("postOnly") else "Gtc"}}
        limit = round_price(price, sz_decimals)
    else:
        try:
            trigger = D(str(request.get("triggerPrice")))
        except InvalidOperation:
            trigger = ZERO
        if not trigger.is_finite() or trigger <= 0:
            raise ValueError(f"a {kind} order needs a positive triggerPrice")
        order_type = {"trigger": {"triggerPx": float(round_price(trigger, sz_decimals)), "isMarket": True,
                                  "tpsl": "sl" if kind == "stop" else "tp"}}
        limit = round_price(price, sz_decimals, outward)
    return OrderPlan(coin, is_buy, rounded, limit, order_type, reduce_only, kind)


def parse_expiry(value: Any) -> datetime | None:
    """``expiresAt`` (ISO 8601) as a datetime; ValueError names a bad one."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"expiresAt {value!r} is not an ISO 8601 time") from None


# -- answers -------------------------------------------------------------------------------------


def order_info(plan: OrderPlan, order_id: str, *, price: Decimal, filled: Decimal, status: str) -> dict[str, Any]:
    """Circuit's ``HyperliquidOrderInfo`` for an order tickloop sent."""
    return {"orderId": order_id, "coin": plan.coin, "side": plan.side, "price": float(price),
            "size": float(plan.size), "filled": float(filled), "status": status, "market": "perp"}


def order_row(order: Mapping[str, Any], status: Any) -> dict[str, Any]:
    """Circuit's ``HyperliquidOrderInfo`` for an order as the exchange lists it (open orders,
    ``orderStatus``, historical orders)."""
    original, left = D(str(order.get("origSz", order.get("sz")))), D(str(order.get("sz")))
    return {"orderId": str(order["oid"]), "coin": order["coin"], "side": "buy" if order.get("side") == "B" else "sell",
            "price": float(order["limitPx"]), "size": float(original), "filled": float(original - left),
            "status": status, "market": "perp"}


# -- closing ------------------------------------------------------------------------------------


def only_reduces(account: Decimal, selling: bool, size: Decimal) -> bool:
    """Whether trading ``size`` away (selling, or buying back) only reduces the account's net
    position ``account``: such an order may be reduce-only."""
    return account != 0 and (account > 0) == selling and abs(account) >= size


def close_order(session: Session, coin: str, size: Decimal, *, selling: bool, mid: Decimal, slippage: Decimal,
                reduce_only: bool, message: str) -> Action:
    """An IOC market order trading ``size`` of ``coin`` away, bounded ``slippage`` from ``mid``."""
    price = mid * (1 - slippage) if selling else mid * (1 + slippage)
    params = {"coin": coin, "side": "sell" if selling else "buy", "size": float(size), "price": float(price),
              "market": "perp", "type": "market", "reduceOnly": reduce_only}
    return Action(venue=NAME, kind=ORDER, method="place_order", params=params, session_id=session.id,
                  wallet=session.wallet, notional_usd=size * mid, message=message)


def cancel_order(session: Session, order_id: str, coin: str, message: str) -> Action:
    """An action cancelling the open order ``order_id`` of ``coin``."""
    return Action(venue=NAME, kind=CANCEL, method="delete_order", params={"orderId": order_id, "coin": coin},
                  session_id=session.id, wallet=session.wallet, message=message)
