"""Order records: ids, each account's open orders, statuses; cancels (by oid, by cloid,
scheduled) and the ``/info`` types about orders."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from tickloop_paper.hyperliquid.market import asset_spec
from tickloop_paper.hyperliquid.wire import Call, bad_body, err, fmt, ok
from tickloop_paper.server import Response

CLOSED_ORDERS_KEPT = 5000


def new_oid(doc: dict[str, Any]) -> int:
    oid = doc["next_oid"]
    doc["next_oid"] = oid + 1
    return oid


def record(doc: dict[str, Any], user: str, oid: int, coin: str, is_buy: bool, price: Decimal, size: Decimal,
           remaining: Decimal, reduce_only: bool, tif: str, cloid: Any, now: int, status: str,
           trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keep an order as ``orderStatus`` shows it (open: also on its account's open list)."""
    order: dict[str, Any] = {
        "coin": coin, "side": "B" if is_buy else "A", "limitPx": fmt(price), "sz": fmt(remaining), "oid": oid,
        "timestamp": now, "origSz": fmt(size), "reduceOnly": reduce_only,
        "orderType": trigger["orderType"] if trigger else "Limit", "tif": None if trigger else tif,
        "cloid": cloid if isinstance(cloid, str) else None, "isTrigger": trigger is not None,
        "triggerPx": trigger["triggerPx"] if trigger else "0.0",
        "triggerCondition": trigger["triggerCondition"] if trigger else "N/A",
        "isPositionTpsl": False, "children": [],
    }
    rec = {"user": user, "order": order, "status": status, "statusTimestamp": now}
    if trigger:
        rec["trigger"] = {"isMarket": trigger["isMarket"], "tpsl": trigger["tpsl"]}
    doc["orders"][str(oid)] = rec
    if status == "open":
        doc["accounts"][user]["open"].append(oid)
    _prune(doc)
    return rec


def rest(doc: dict[str, Any], user: str, coin: str, is_buy: bool, price: Decimal, size: Decimal,
         reduce_only: bool, tif: str, cloid: Any, now: int, trigger: dict[str, Any] | None = None) -> int:
    """Open a new resting order; its oid."""
    oid = new_oid(doc)
    record(doc, user, oid, coin, is_buy, price, size, size, reduce_only, tif, cloid, now, "open", trigger)
    return oid


def _prune(doc: dict[str, Any]) -> None:
    orders = doc["orders"]
    if len(orders) <= CLOSED_ORDERS_KEPT * 2:
        return
    closed = sorted((int(oid) for oid, rec in orders.items() if rec["status"] != "open"))
    for oid in closed[:-CLOSED_ORDERS_KEPT]:
        del orders[str(oid)]


def close_order(doc: dict[str, Any], oid: int, status: str, now: int) -> None:
    rec = doc["orders"][str(oid)]
    rec["status"], rec["statusTimestamp"] = status, now
    account = doc["accounts"].get(rec["user"])
    if account is not None and oid in account["open"]:
        account["open"].remove(oid)


def open_orders(doc: dict[str, Any], user: str) -> list[dict[str, Any]]:
    account = doc["accounts"].get(user)
    return [doc["orders"][str(oid)] for oid in account["open"]] if account else []


def housekeeping(doc: dict[str, Any], now: int) -> None:
    """Fire scheduled cancels that are due."""
    for account in doc["accounts"].values():
        at = account.get("scheduledCancel")
        if at is not None and at <= now:
            for oid in list(account["open"]):
                close_order(doc, oid, "scheduledCancel", now)
            account["scheduledCancel"] = None


# -- /exchange actions ----------------------------------------------------------------------------


def cancel(call: Call) -> Response:
    cancels = call.action.get("cancels")
    if not isinstance(cancels, list):
        return bad_body()
    statuses: list[Any] = []
    for item in cancels:
        asset, oid = item.get("a"), item.get("o")
        rec = call.doc["orders"].get(str(oid)) if isinstance(oid, int) else None
        statuses.append(_cancel_one(call, rec, asset))
    return ok({"type": "cancel", "data": {"statuses": statuses}})


def cancel_by_cloid(call: Call) -> Response:
    cancels = call.action.get("cancels")
    if not isinstance(cancels, list):
        return bad_body()
    doc = call.doc
    statuses: list[Any] = []
    for item in cancels:
        asset, cloid = item.get("asset"), item.get("cloid")
        rec = next((doc["orders"][str(oid)] for oid in doc["accounts"][call.user]["open"]
                    if doc["orders"][str(oid)]["order"]["cloid"] == cloid), None)
        statuses.append(_cancel_one(call, rec, asset))
    return ok({"type": "cancel", "data": {"statuses": statuses}})


def _cancel_one(call: Call, rec: dict[str, Any] | None, asset: Any) -> Any:
    coin_spec = asset_spec(call.doc, asset)
    coin = coin_spec["name"] if coin_spec is not None else None
    if rec is None or rec["user"] != call.user or rec["status"] != "open" or rec["order"]["coin"] != coin:
        return {"error": f"Order was never placed, already canceled, or filled. asset={asset}"}
    close_order(call.doc, rec["order"]["oid"], "canceled", call.now)
    return "success"


def schedule_cancel(call: Call) -> Response:
    at = call.action.get("time")
    if at is not None and (not isinstance(at, int) or at < call.now + 5000):
        return err("Scheduled cancel time too early, must be at least 5 seconds from now.")
    call.doc["accounts"][call.user]["scheduledCancel"] = at
    return ok({"type": "default"})


# -- /info types about orders (handlers: doc, user, body, now) ------------------------------------


def open_orders_info(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    return [{k: rec["order"][k] for k in ("coin", "limitPx", "oid", "side", "sz", "timestamp")}
            for rec in open_orders(doc, user)]


def frontend_open_orders(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    return [copy.deepcopy(rec["order"]) for rec in open_orders(doc, user)]


def order_status(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    oid = body.get("oid")
    rec = None
    if isinstance(oid, int):
        rec = doc["orders"].get(str(oid))
    elif isinstance(oid, str):
        rec = next((r for r in doc["orders"].values() if r["order"].get("cloid") == oid and r["user"] == user), None)
    if rec is None or rec["user"] != user:
        return {"status": "unknownOid"}
    return {"status": "order", "order": {"order": copy.deepcopy(rec["order"]), "status": rec["status"],
                                         "statusTimestamp": rec["statusTimestamp"]}}


def historical_orders(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    found = [rec for rec in doc["orders"].values() if rec["user"] == user]
    found.sort(key=lambda rec: rec["order"]["oid"], reverse=True)
    return [{"order": copy.deepcopy(rec["order"]), "status": rec["status"],
             "statusTimestamp": rec["statusTimestamp"]} for rec in found]
