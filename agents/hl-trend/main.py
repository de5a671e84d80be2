"""hl-trend: follows one Hyperliquid perp's trend against a moving average of its mid.

Every run samples the midpoint price into session memory (``prices``: the last ``window``
samples, a JSON list). With a full window, a mid more than ``band`` percent above the average
means long ``size`` coins, more than ``band`` percent below means short (or flat without
``allow_short``), and anything in between keeps the position. The difference between that target
and what the session holds is traded with one market order whose price is the worst accepted
(``slippage`` percent through the mid); an order that only shrinks the position is reduce-only.

Uses only Circuit's agent API (``midpoint_price``, ``positions``, ``place_order``, ``memory``,
``log``), so it runs on the Circuit SDK with the TYPE_CHECKING import changed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickloop import AgentContext

PRICES = "prices"


def run(agent: AgentContext) -> None:
    """Sample the mid, then move the session's position toward the trend's target."""
    settings = agent.settings
    coin = settings.get("coin") or "ETH"
    size = float(settings.get("size") or 0)
    window = max(2, int(settings.get("window") or 5))
    band = float(settings.get("band") or 0) / 100
    slippage = float(settings.get("slippage") or 1.0) / 100
    hl = agent.platforms.hyperliquid

    if size <= 0:
        agent.log(f"size must be greater than 0, got {size}; nothing to do", error=True)
        return
    quote = hl.midpoint_price(coin)
    if not quote.success:
        agent.log(f"Cannot read the {coin} mid: {quote.error}", error=True)
        return
    mid = float(_field(quote.data, "priceUsd") or _field(quote.data, "price_usd"))

    prices = _prices(agent)[-(window - 1):] + [mid]
    agent.memory.set(PRICES, json.dumps(prices))
    if len(prices) < window:
        agent.log(f"{coin} mid {mid:g}: collecting prices ({len(prices)} of {window})")
        return
    average = sum(prices) / len(prices)

    held = hl.positions()
    if not held.success:
        agent.log(f"Cannot read positions: {held.error}", error=True)
        return
    current = 0.0
    for position in held.data or []:
        if _field(position, "coin") == coin:
            amount = float(_field(position, "size") or 0)
            current = amount if _field(position, "side") == "long" else -amount

    if mid > average * (1 + band):
        target, trend = size, "up"
    elif mid < average * (1 - band):
        target, trend = (-size if settings.get("allow_short", True) else 0.0), "down"
    else:
        agent.log(f"{coin} mid {mid:g} within {band * 100:g}% of its {window}-run average {average:g};"
                  f" holding {current:g}")
        return
    delta = round(target - current, 8)
    if abs(delta) < 1e-9:
        agent.log(f"{coin} trend {trend} (mid {mid:g}, average {average:g}); already at {current:g}")
        return

    buying = delta > 0
    shrinking = abs(target) < abs(current) and (target == 0 or (target > 0) == (current > 0))
    order = {"coin": coin, "side": "buy" if buying else "sell", "size": abs(delta),
             "price": round(mid * (1 + slippage if buying else 1 - slippage), 6), "market": "perp",
             "type": "market", "reduceOnly": shrinking,
             "message": f"hl-trend: {coin} trend {trend}, {current:g} -> {target:g}"}
    result = hl.place_order(order)
    if not result.success:
        agent.log(f"{coin} trend {trend}: order to go from {current:g} to {target:g} failed: {result.error}",
                  error=True)
        return
    data = result.data
    if _field(data, "suggested"):
        agent.log(f"{coin} trend {trend}: suggested {order['side']} {abs(delta):g} (suggestion"
                  f" {_field(data, 'suggestionId')})")
        return
    agent.log(f"{coin} trend {trend} (mid {mid:g}, average {average:g}): {order['side']} {abs(delta):g},"
              f" filled {_field(data, 'filled')} at {_field(data, 'price')} (order {_field(data, 'orderId')})")


def unwind(agent: AgentContext, portfolio: Any) -> None:
    """Log what is held; tickloop's Hyperliquid closer closes the session's share after this."""
    positions = list(_field(portfolio, "positions") or [])
    if not positions:
        agent.log("Unwinding: no open positions.")
        return
    for position in positions:
        agent.log(f"Unwinding: {_field(position, 'coin')} {_field(position, 'size')} is left to the closer"
                  " (reduce-only IOC orders for this session's share)")


def _prices(agent: AgentContext) -> list[float]:
    got = agent.memory.get(PRICES)
    if not got.success or not got.data.value:
        return []
    try:
        return [float(p) for p in json.loads(got.data.value)]
    except (ValueError, TypeError):
        agent.log(f"Memory key {PRICES} holds {got.data.value!r}; starting a new window", error=True)
        return []


def _field(item: Any, name: str) -> Any:
    """A field of a result item, whether it is a mapping or an object."""
    if item is None:
        return None
    if isinstance(item, dict):
        return item.get(name)
    try:
        return item[name]
    except (TypeError, KeyError, IndexError):
        return getattr(item, name, None)
