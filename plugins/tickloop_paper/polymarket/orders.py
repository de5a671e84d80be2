"""Orders: posting one (``POST /order``, step by step: payload, instrument, signature, price and
size, balance, matching, the record), GTD expiry, cancels, and the order records kept."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from tickloop_paper.polymarket import auth, matching
from tickloop_paper.polymarket.accounts import available
from tickloop_paper.polymarket.markets import market_of, outcome
from tickloop_paper.polymarket.matching import KEEP_DONE, Match, Ticket
from tickloop_paper.polymarket.wire import NO_BALANCE, NO_BOOK, UNIT, ApiError, price_text, units
from tickloop_paper.server import Faults

ORDER_TYPES = ("FOK", "FAK", "GTC", "GTD")
_SIDES: dict[Any, str] = {"BUY": "BUY", "SELL": "SELL", 0: "BUY", 1: "SELL", "0": "BUY", "1": "SELL"}


def post_order(doc: dict[str, Any], address: str, api_key: str, body: Any, faults: Faults,
               clock: Callable[[], float]) -> dict[str, Any]:
    """Check a posted order, match it, rest what a GTC/GTD leaves; the CLOB's answer.
    Raises ApiError as the CLOB answers a refused order (the transaction then changes nothing)."""
    ticket = _ticket(doc, address, api_key, body, clock)
    needs = "pusd" if ticket.side == "BUY" else ticket.tid
    if available(doc, address, needs) < ticket.maker_amount:
        raise ApiError(400, NO_BALANCE)
    matched = matching.match(doc["books"][ticket.tid], ticket, faults)
    now = int(clock())
    trade_ids, hashes = matching.execute(doc, address, api_key, ticket, matched, now)
    status = _record(doc, address, api_key, ticket, matched, trade_ids, now)
    shares, usd = matched.shares, matched.usd
    making, taking = (usd, shares) if ticket.side == "BUY" else (shares, usd)
    return {"success": True, "errorMsg": "", "orderID": ticket.order_id, "status": status,
            "makingAmount": units(making), "takingAmount": units(taking),
            "transactionsHashes": hashes, "tradeIDs": trade_ids}


def _ticket(doc: dict[str, Any], address: str, api_key: str, body: Any, clock: Callable[[], float]) -> Ticket:
    order, order_type, post_only = _payload(api_key, body)
    tid, mk, side = _instrument(doc, order)
    signed = auth.signed_order(order, tid, side, mk["neg_risk"], address)
    if signed.order_id in doc["orders"]:
        raise ApiError(400, f"order {signed.order_id} is invalid. Duplicated.")
    if signed.maker_amount <= 0 or signed.taker_amount <= 0:
        raise ApiError(400, "Invalid order payload: amounts must be positive")
    expiration = int(str(order.get("expiration") or "0") or 0)
    if order_type == "GTD" and expiration <= clock():
        raise ApiError(400, "invalid expiration: a GTD order needs an expiration in the future")
    limit, shares = _price_and_size(mk, side, signed.maker_amount, signed.taker_amount)
    return Ticket(order_id=signed.order_id, tid=tid, market=mk, side=side, order_type=order_type,
                  post_only=post_only, maker_amount=signed.maker_amount, taker_amount=signed.taker_amount,
                  expiration=expiration, limit=limit, shares=shares)


def _payload(api_key: str, body: Any) -> tuple[dict[str, Any], str, bool]:
    """The posted V2 order, its order type and post-only flag."""
    if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
        raise ApiError(400, "Invalid order payload")
    if body.get("owner") != api_key:
        raise ApiError(400, "the order owner has to be the owner of the API KEY")
    order = body["order"]
    if "timestamp" not in order and any(k in order for k in ("nonce", "feeRateBps", "taker")):
        raise ApiError(400, "order_version_mismatch")  # a V1 order, as CLOB v2 answers it
    missing = [k for k in auth.V2_FIELDS if k not in order]
    if missing:
        raise ApiError(400, f"Invalid order payload: missing {', '.join(missing)}")
    order_type = str(body.get("orderType") or "GTC").upper()
    if order_type not in ORDER_TYPES:
        raise ApiError(400, f"Invalid order payload: orderType must be one of {', '.join(ORDER_TYPES)}")
    post_only = bool(body.get("postOnly"))
    if post_only and order_type in ("FOK", "FAK"):
        raise ApiError(400, "Invalid order payload: postOnly is not allowed for FOK and FAK orders")
    return order, order_type, post_only


def _instrument(doc: dict[str, Any], order: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """The order's token id, its (open) market and the side: BUY or SELL."""
    tid = str(order["tokenId"])
    mk = market_of(doc, tid) if tid.isdigit() else None
    if mk is None:
        raise ApiError(400, "Invalid order payload: unknown tokenId")
    if mk["closed"] or tid not in doc["books"]:
        raise ApiError(400, f"{NO_BOOK}: the market is closed")
    side_value = order["side"]
    side = _SIDES.get(side_value.upper() if isinstance(side_value, str) else side_value)
    if side is None:
        raise ApiError(400, "Invalid order payload: side must be BUY or SELL")
    return tid, mk, side


def _price_and_size(mk: dict[str, Any], side: str, maker_amount: int, taker_amount: int) -> tuple[Decimal, int]:
    """The order's limit price (on the tick, inside [tick, 1 - tick]) and its size in raw shares."""
    tick = Decimal(mk["minimum_tick_size"])
    ratio = Decimal(maker_amount) / Decimal(taker_amount) if side == "BUY" else \
        Decimal(taker_amount) / Decimal(maker_amount)
    limit = ratio.quantize(tick, rounding=ROUND_HALF_EVEN)
    if abs(ratio - limit) > tick / 100:
        raise ApiError(400, f"order price ({ratio:.6f}) breaks the minimum tick size rule: {mk['minimum_tick_size']}")
    if not tick <= limit <= 1 - tick:
        raise ApiError(400, f"order is invalid. Price ({price_text(limit)}), min: {price_text(tick)} - max:"
                            f" {price_text(1 - tick)}")
    shares = taker_amount if side == "BUY" else maker_amount
    if shares < mk["minimum_order_size"] * UNIT:
        raise ApiError(400, f"Size ({units(shares)}) lower than the minimum: {mk['minimum_order_size']}")
    return limit, shares


def _record(doc: dict[str, Any], address: str, api_key: str, ticket: Ticket, matched: Match,
            trade_ids: list[str], now: int) -> str:
    """Keep the order (a GTC/GTD with shares left rests and reserves them); its status as answered."""
    mk, tid, side, limit = ticket.market, ticket.tid, ticket.side, ticket.limit
    rest = ticket.order_type in ("GTC", "GTD") and matched.shares < ticket.shares
    left = ticket.shares - matched.shares
    doc["orders"][ticket.order_id] = {
        "id": ticket.order_id, "status": "LIVE" if rest else "MATCHED" if matched.fills else "UNMATCHED",
        "owner": api_key, "maker_address": address, "market": mk["condition_id"], "asset_id": tid, "side": side,
        "original_size": units(ticket.shares), "size_matched": units(matched.shares), "price": price_text(limit),
        "outcome": outcome(mk, tid), "expiration": str(ticket.expiration), "order_type": ticket.order_type,
        "created_at": now, "associate_trades": trade_ids,
        "_reserve_asset": ("pusd" if side == "BUY" else tid) if rest else "",
        "_reserved": (int((limit * left).to_integral_value(ROUND_DOWN)) + 1 if side == "BUY" else left) if rest else 0,
        "_remaining": left if rest else 0,
    }
    _prune(doc)
    return "live" if rest else "matched" if matched.fills else "unmatched"


def order_view(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if not k.startswith("_")}


def expire(doc: dict[str, Any], now: float) -> None:
    """GTD orders past their expiration stop being live."""
    for order in doc["orders"].values():
        if order["status"] == "LIVE" and order["order_type"] == "GTD" and 0 < int(order["expiration"]) <= now:
            order["status"], order["_reserved"] = "EXPIRED", 0


def _prune(doc: dict[str, Any]) -> None:
    done = [oid for oid, o in doc["orders"].items() if o["status"] != "LIVE"]
    for oid in done[:-KEEP_DONE]:
        del doc["orders"][oid]


def cancel(doc: dict[str, Any], address: str, path: str, body: Any) -> dict[str, Any]:
    """``DELETE`` ``/order``, ``/orders``, ``/cancel-all`` or ``/cancel-market-orders``: cancel the
    address's live orders it names."""
    mine = {oid: o for oid, o in doc["orders"].items() if o["maker_address"] == address}
    if path == "/order":
        if not isinstance(body, dict) or not body.get("orderID"):
            raise ApiError(400, "Invalid payload: orderID is required")
        wanted = [str(body["orderID"])]
    elif path == "/orders":
        if not isinstance(body, list):
            raise ApiError(400, "Invalid payload: a list of order ids is required")
        wanted = [str(i) for i in body]
    elif path == "/cancel-all":
        wanted = [oid for oid, o in mine.items() if o["status"] == "LIVE"]
    else:
        body = body if isinstance(body, dict) else {}
        wanted = [oid for oid, o in mine.items() if o["status"] == "LIVE"
                  and (not body.get("market") or o["market"] == body["market"])
                  and (not body.get("asset_id") or o["asset_id"] == body["asset_id"])]
    canceled, not_canceled = [], {}
    for oid in wanted:
        order = mine.get(oid)
        if order is None:
            not_canceled[oid] = "order not found"
        elif order["status"] != "LIVE":
            not_canceled[oid] = "order can't be canceled: it is " + order["status"].lower()
        else:
            order["status"], order["_reserved"] = "CANCELED", 0
            canceled.append(oid)
    return {"canceled": canceled, "not_canceled": not_canceled}
