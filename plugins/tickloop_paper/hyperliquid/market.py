"""The perp markets: the universe, the mids and the deep paper book around them, Hyperliquid's
size and price (tick) rules, and the ``/info`` types about markets."""

from __future__ import annotations

import copy
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tickloop_paper.hyperliquid.wire import D, fmt

#: The perp universe: asset id = index. Real Hyperliquid values for the size decimals.
UNIVERSE: list[dict[str, Any]] = [
    {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
    {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
    {"name": "SOL", "szDecimals": 2, "maxLeverage": 20},
    {"name": "HYPE", "szDecimals": 2, "maxLeverage": 10},
]
MIDS = {"BTC": "60000.0", "ETH": "3000.0", "SOL": "150.0", "HYPE": "25.0"}


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def size_ok(size: Decimal, sz_decimals: int) -> bool:
    return size > 0 and _decimals(size) <= sz_decimals


def price_ok(price: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid's tick rule for perps: integers always; otherwise at most 5 significant
    figures and at most ``6 - szDecimals`` decimals."""
    if price <= 0:
        return False
    if price == price.to_integral_value():
        return True
    normal = price.normalize()
    return _decimals(normal) <= 6 - sz_decimals and len(normal.as_tuple().digits) <= 5


def round_price(price: Decimal, sz_decimals: int) -> Decimal:
    """The nearest valid price: 5 significant figures, then ``6 - szDecimals`` decimals."""
    if price <= 0:
        return price
    if price >= D(100000):
        return price.quantize(D(1))
    shift = price.adjusted() - 4  # keep 5 significant figures
    rounded = price.quantize(D(1).scaleb(shift))
    return rounded.quantize(D(1).scaleb(-(6 - sz_decimals))) if _decimals(rounded) > 6 - sz_decimals else rounded


def spec(doc: dict[str, Any], coin: str) -> dict[str, Any]:
    return next(item for item in doc["universe"] if item["name"] == coin)


def asset_spec(doc: dict[str, Any], asset: Any) -> dict[str, Any] | None:
    """The coin of asset id ``asset``, or None when there is no such asset."""
    if not isinstance(asset, int) or not 0 <= asset < len(doc["universe"]):
        return None
    return doc["universe"][asset]


def touch(doc: dict[str, Any], coin: str) -> tuple[Decimal, Decimal]:
    """Best bid and ask: the mid less and plus the half-spread (equal at spread 0)."""
    mid = D(doc["mids"][coin])
    half = mid * D(str(doc.get("spread") or "0"))
    return mid - half, mid + half


def crosses(is_buy: bool, price: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """Whether a limit at ``price`` reaches the other side of the book."""
    return price >= ask if is_buy else price <= bid


# -- /info types about markets (handlers: doc, body, now) -----------------------------------------


def meta(doc: dict[str, Any], body: dict[str, Any], now: int) -> Any:
    universe = doc["universe"] if body.get("dex", "") in ("", None) else []
    return {"universe": copy.deepcopy(universe)}


def spot_meta(doc: dict[str, Any], body: dict[str, Any], now: int) -> Any:
    return {"universe": [], "tokens": []}


def all_mids(doc: dict[str, Any], body: dict[str, Any], now: int) -> Any:
    return dict(doc["mids"])


def l2_book(doc: dict[str, Any], body: dict[str, Any], now: int) -> Any:
    coin: Any = body.get("coin")
    if coin not in doc["mids"]:
        return None
    coin_spec = spec(doc, coin)
    sz_decimals = coin_spec["szDecimals"]
    bid, ask = touch(doc, coin)
    step = max(D(doc["mids"][coin]) * D("0.0005"), D(1).scaleb(-(6 - sz_decimals)))
    depth = (D(250000) / D(doc["mids"][coin])).quantize(D(1).scaleb(-sz_decimals), ROUND_DOWN)
    bids = [{"px": fmt(round_price(bid - i * step, sz_decimals)), "sz": fmt(depth), "n": 1} for i in range(10)]
    asks = [{"px": fmt(round_price(ask + i * step, sz_decimals)), "sz": fmt(depth), "n": 1} for i in range(10)]
    return {"coin": coin, "time": now, "levels": [bids, asks]}
