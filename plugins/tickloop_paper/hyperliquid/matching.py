"""Matching against the paper book: placing the orders of an ``order`` action (Hyperliquid's
checks, with its messages), fills (netting, realised PnL, fees, ``userFills``), and the resting
and trigger orders a moved mid crosses."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import attrs

from tickloop_paper.hyperliquid.account import margin_ok, szi
from tickloop_paper.hyperliquid.market import asset_spec, crosses, price_ok, size_ok, touch
from tickloop_paper.hyperliquid.orders import close_order, new_oid, record, rest
from tickloop_paper.hyperliquid.wire import ZERO, Call, D, bad_body, fmt, ok, usd
from tickloop_paper.server import Response

FILLS_KEPT = 2000
MIN_NOTIONAL = D(10)
TAKER_FEE = "0.00045"
MAKER_FEE = "0.00015"


@attrs.frozen
class Ticket:
    """One order of an ``order`` action, as sent (``kind`` is its ``t``, ``cloid`` its ``c``)."""

    asset: int
    coin: str
    sz_decimals: int
    is_buy: bool
    reduce_only: bool
    price: Decimal
    size: Decimal
    kind: dict[str, Any]
    cloid: Any


def place_orders(call: Call) -> Response:
    """The ``order`` action: each order answers on its own (a status or an error)."""
    wires = call.action.get("orders")
    if not isinstance(wires, list) or not wires:
        return bad_body()
    statuses = []
    for wire in wires:
        try:
            statuses.append(_place(call, wire))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            statuses.append({"error": "Order has invalid format."})
    return ok({"type": "order", "data": {"statuses": statuses}})


def _place(call: Call, wire: dict[str, Any]) -> dict[str, Any]:
    asset = wire["a"]
    spec = asset_spec(call.doc, asset)
    if spec is None:
        return {"error": f"Invalid asset {asset}."}
    ticket = Ticket(asset=asset, coin=spec["name"], sz_decimals=spec["szDecimals"], is_buy=bool(wire["b"]),
                    reduce_only=bool(wire.get("r", False)), price=D(str(wire["p"])), size=D(str(wire["s"])),
                    kind=wire["t"], cloid=wire.get("c"))
    refused = _refusal(call, ticket)
    if refused is not None:
        return {"error": refused}
    if "trigger" in ticket.kind:
        return _place_trigger(call, ticket)
    return _place_limit(call, ticket)


def _refusal(call: Call, t: Ticket) -> str | None:
    """Why Hyperliquid refuses the order whatever its type, or None."""
    if not size_ok(t.size, t.sz_decimals):
        return "Order has invalid size."
    if not price_ok(t.price, t.sz_decimals):
        return f"Price must be divisible by tick size. asset={t.asset}"
    position = szi(call.doc["accounts"][call.user], t.coin)
    if t.reduce_only:
        if position == 0 or (position > 0) == t.is_buy or t.size > abs(position):
            return "Reduce only order would increase position."
    elif t.size * t.price < MIN_NOTIONAL:
        return "Order must have minimum value of $10."
    return None


def _margin_refusal(call: Call, t: Ticket, signed: Decimal) -> dict[str, Any] | None:
    if not t.reduce_only and not margin_ok(call.doc, call.user, t.coin, signed, t.price):
        return {"error": f"Insufficient margin to place order. asset={t.asset}"}
    return None


def _place_trigger(call: Call, t: Ticket) -> dict[str, Any]:
    """A stop or take-profit order: it rests until the mid crosses its trigger price."""
    trigger = t.kind["trigger"]
    trigger_px = D(str(trigger["triggerPx"]))
    tpsl = trigger.get("tpsl")
    if tpsl not in ("tp", "sl") or not price_ok(trigger_px, t.sz_decimals):
        return {"error": f"Invalid trigger price. asset={t.asset}"}
    refused = _margin_refusal(call, t, t.size if t.is_buy else -t.size)
    if refused is not None:
        return refused
    market = bool(trigger.get("isMarket"))
    order_type = ("Take Profit" if tpsl == "tp" else "Stop") + (" Market" if market else " Limit")
    above = (tpsl == "tp") != t.is_buy  # a sell take-profit / buy stop fires as the mid rises
    oid = rest(call.doc, call.user, t.coin, t.is_buy, t.price, t.size, t.reduce_only, "Gtc", t.cloid, call.now,
               trigger={"triggerPx": fmt(trigger_px), "isMarket": market, "tpsl": tpsl, "orderType": order_type,
                        "triggerCondition": f"Price {'above' if above else 'below'} {fmt(trigger_px)}"})
    return {"resting": {"oid": oid}}


def _place_limit(call: Call, t: Ticket) -> dict[str, Any]:
    """A limit order: one that crosses fills in full at the touch (the paper book is deep); a
    ``Gtc`` that does not rests, an ``Alo`` that would cross and an ``Ioc`` that does not are refused."""
    doc = call.doc
    tif = t.kind["limit"]["tif"]
    if tif not in ("Gtc", "Alo", "Ioc"):
        return {"error": "Order has invalid format."}
    bid, ask = touch(doc, t.coin)
    crossing = crosses(t.is_buy, t.price, bid, ask)
    size = t.size
    if tif == "Alo":
        if crossing:
            return {"error": f"Post only order would have immediately matched, bbo was {fmt(bid)}@{fmt(ask)}."
                             f" asset={t.asset}"}
    elif tif == "Ioc":
        ioc_size = _ioc_size(call, t, crossing)
        if ioc_size is None:
            return {"error": f"Order could not immediately match against any resting orders. asset={t.asset}"}
        size = ioc_size
    signed = size if t.is_buy else -size
    refused = _margin_refusal(call, t, signed)
    if refused is not None:
        return refused
    if crossing:  # a taker
        price = ask if t.is_buy else bid
        oid = new_oid(doc)
        record(doc, call.user, oid, t.coin, t.is_buy, t.price, t.size, t.size - size, t.reduce_only, tif, t.cloid,
               call.now, "filled" if size == t.size else "canceled")
        fill(doc, call.user, t.coin, signed, price, True, oid, call.now)
        return {"filled": {"totalSz": fmt(size), "avgPx": fmt(price), "oid": oid}}
    oid = rest(doc, call.user, t.coin, t.is_buy, t.price, size, t.reduce_only, tif, t.cloid, call.now)
    return {"resting": {"oid": oid}}


def _ioc_size(call: Call, t: Ticket, crossing: bool) -> Decimal | None:
    """What an IOC fills (less under a ``partial_fill`` fault), or None: it could not match."""
    if call.faults.take("ioc_no_match", "/exchange") is not None or not crossing:
        return None
    partial = call.faults.take("partial_fill", "/exchange")
    if partial is None:
        return t.size
    fraction = D(str(partial.params.get("fraction", 0.5)))
    size = (t.size * fraction).quantize(D(1).scaleb(-t.sz_decimals), ROUND_DOWN)
    return size if size > 0 else None


def fill(doc: dict[str, Any], user: str, coin: str, signed: Decimal, price: Decimal, crossed: bool,
         oid: int, now: int) -> None:
    """Trade ``signed`` of ``coin`` at ``price`` for ``user``: net the position, realise PnL,
    charge the fee, and record the fill as ``userFills`` shows it."""
    account = doc["accounts"][user]
    held = account["positions"].get(coin) or {"szi": "0.0", "entryPx": "0.0"}
    start, entry = D(held["szi"]), D(held["entryPx"])
    closed_pnl = ZERO
    if start == 0 or (start > 0) == (signed > 0):
        total = start + signed
        entry = (entry * abs(start) + price * abs(signed)) / abs(total)
        direction = "Open Long" if signed > 0 else "Open Short"
    else:
        closed = min(abs(signed), abs(start))
        closed_pnl = (price - entry) * closed * (1 if start > 0 else -1)
        total = start + signed
        if abs(signed) <= abs(start):
            direction = "Close Long" if start > 0 else "Close Short"
        else:
            direction = "Long > Short" if start > 0 else "Short > Long"
        if total == 0:
            entry = ZERO
        elif (total > 0) != (start > 0):
            entry = price
    rate = D(doc["fees"]["taker" if crossed else "maker"])
    fee = usd(abs(signed) * price * rate)
    account["usdc"] = fmt(usd(D(account["usdc"]) + closed_pnl - fee))
    if total == 0:
        account["positions"].pop(coin, None)
    else:
        account["positions"][coin] = {"szi": fmt(total), "entryPx": fmt(entry.quantize(D("0.00000001")))}
    tid = doc["next_tid"]
    doc["next_tid"] = tid + 1
    account["fills"].append({
        "coin": coin, "px": fmt(price), "sz": fmt(abs(signed)), "side": "B" if signed > 0 else "A", "time": now,
        "startPosition": fmt(start), "dir": direction, "closedPnl": fmt(usd(closed_pnl)),
        "hash": "0x" + format(tid, "064x"), "oid": oid, "crossed": crossed, "fee": fmt(fee), "tid": tid,
        "feeToken": "USDC",
    })
    del account["fills"][:-FILLS_KEPT]


def match_resting(doc: dict[str, Any], coin: str, now: int) -> list[int]:
    """After the mid moved: fire triggers it crossed and fill resting limits it crossed; the oids touched."""
    mid = D(doc["mids"][coin])
    bid, ask = touch(doc, coin)
    open_ids = sorted(oid for account in doc["accounts"].values() for oid in account["open"]
                      if doc["orders"][str(oid)]["order"]["coin"] == coin)
    return [oid for oid in open_ids if _match_one(doc, oid, mid, bid, ask, now)]


def _match_one(doc: dict[str, Any], oid: int, mid: Decimal, bid: Decimal, ask: Decimal, now: int) -> bool:
    """Fire, fill or cancel one open order the mid may have crossed; whether it was touched."""
    rec = doc["orders"][str(oid)]
    order = rec["order"]
    is_buy = order["side"] == "B"
    limit = D(order["limitPx"])
    if order["isTrigger"]:
        trigger_px = D(order["triggerPx"])
        fires = mid >= trigger_px if "above" in order["triggerCondition"] else mid <= trigger_px
        if not fires:
            return False
        if not rec["trigger"]["isMarket"] and not crosses(is_buy, limit, bid, ask):
            # a stop-limit becomes a resting limit order
            order["isTrigger"], order["orderType"], order["tif"] = False, "Limit", "Gtc"
            rec["status"] = "open"
            return True
        price, crossed = (ask if is_buy else bid), True
    else:
        if not crosses(is_buy, limit, bid, ask):
            return False
        price, crossed = limit, False
    _fill_resting(doc, rec, price, crossed, now)
    return True


def _fill_resting(doc: dict[str, Any], rec: dict[str, Any], price: Decimal, crossed: bool, now: int) -> None:
    """Fill an open order the mid crossed (a reduce-only one at most the position, else it is cancelled)."""
    order, user = rec["order"], rec["user"]
    oid, coin, is_buy = order["oid"], order["coin"], order["side"] == "B"
    size = D(order["sz"])
    if order["reduceOnly"]:
        position = szi(doc["accounts"][user], coin)
        if position == 0 or (position > 0) == is_buy:
            close_order(doc, oid, "reduceOnlyCanceled", now)
            return
        size = min(size, abs(position))
    fill(doc, user, coin, size if is_buy else -size, price, crossed, oid, now)
    order["sz"] = fmt(D(order["sz"]) - size)
    close_order(doc, oid, "filled" if D(order["sz"]) == 0 else "canceled", now)
