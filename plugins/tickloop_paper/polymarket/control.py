"""Paper control (not Polymarket's; no auth, the server is loopback): fund an address, resolve a
market, redeem resolved shares, move or set a book, read a balance."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from eth_utils import keccak

from tickloop_paper.polymarket.accounts import account_of, trade
from tickloop_paper.polymarket.markets import book_view, ladder, market, market_of, mid
from tickloop_paper.polymarket.wire import UNIT, ApiError, dec, price_text, units
from tickloop_paper.state import ExchangeState


def fund(state: ExchangeState, body: Any) -> dict[str, Any]:
    """``POST /paper/fund {"address", "pusd", "tokens"?, "initial"?}``: credit pUSD, and shares at
    the mid (``initial``: only an address not funded yet)."""
    if not isinstance(body, dict) or not body.get("address"):
        raise ApiError(400, "Invalid payload: address is required")
    address = str(body["address"]).lower()
    pusd = int(dec(body.get("pusd", 0), "pusd") * UNIT)
    tokens = body.get("tokens") or {}
    if pusd < 0 or not isinstance(tokens, dict):
        raise ApiError(400, "Invalid payload: pusd must be 0 or more, tokens a mapping of token id to shares")
    with state.transaction() as doc:
        funded = not (body.get("initial") and address in doc["accounts"])
        account = account_of(doc, address)
        if funded:
            account["pusd"] += pusd
            for tid, shares in tokens.items():
                mk = market_of(doc, str(tid))
                raw = int(dec(shares, "shares") * UNIT)
                price = mid(doc, str(tid)) if not mk["resolved"] else Decimal(0)
                account["pusd"] += int(price * raw)  # given at the mid: cost basis without moving cash
                trade(account, str(tid), raw, int(price * raw))
        return {"address": address, "pusd": units(account["pusd"]), "funded": funded}


def resolve(state: ExchangeState, body: Any) -> dict[str, Any]:
    """``POST /paper/resolve {"condition_id", "winner"}``: close the market (its books go, its
    live orders are cancelled) and make the winner's shares redeemable at $1."""
    if not isinstance(body, dict) or not body.get("condition_id") or not body.get("winner"):
        raise ApiError(400, "Invalid payload: condition_id and winner are required")
    with state.transaction() as doc:
        mk = market(doc, str(body["condition_id"]))
        winner = str(body["winner"])
        token = next((t for t in mk["tokens"] if winner in (t["token_id"], t["outcome"])), None)
        if token is None:
            raise ApiError(400, f"winner must be one of the outcomes {[t['outcome'] for t in mk['tokens']]}"
                                " or their token ids")
        mk.update(closed=True, active=False, accepting_orders=False, resolved=True, winner=token["token_id"])
        for t in mk["tokens"]:
            t["winner"] = t["token_id"] == token["token_id"]
            t["price"] = "1" if t["winner"] else "0"
            doc["books"].pop(t["token_id"], None)
        for order in doc["orders"].values():
            if order["market"] == mk["condition_id"] and order["status"] == "LIVE":
                order["status"], order["_reserved"] = "CANCELED", 0
        return {"condition_id": mk["condition_id"], "winner": token["token_id"], "outcome": token["outcome"]}


def redeem(state: ExchangeState, body: Any) -> dict[str, Any]:
    """``POST /paper/redeem {"address", "token_ids", "amounts"?}``: pay $1 a winning share, 0 a losing one."""
    if not isinstance(body, dict) or not body.get("address") or not isinstance(body.get("token_ids"), list):
        raise ApiError(400, "Invalid payload: address and token_ids are required")
    address = str(body["address"]).lower()
    amounts = body.get("amounts") or {}
    redeemed, skipped = [], []
    with state.transaction() as doc:
        account = account_of(doc, address)
        for tid in (str(t) for t in body["token_ids"]):
            try:
                mk = market_of(doc, tid)
            except ApiError:
                skipped.append({"tokenId": tid, "reason": "unknown token id"})
                continue
            if not mk["resolved"]:
                skipped.append({"tokenId": tid, "reason": "the market is not resolved"})
                continue
            held = account["tokens"].get(tid, 0)
            shares = min(held, int(dec(amounts[tid], "amount") * UNIT)) if tid in amounts else held
            if shares <= 0:
                skipped.append({"tokenId": tid, "reason": "no shares to redeem"})
                continue
            won = mk["winner"] == tid
            payout = shares if won else 0
            trade(account, tid, -shares, payout)
            redeemed.append({"tokenId": tid, "conditionId": mk["condition_id"], "shares": units(shares),
                             "payout": units(payout), "won": won,
                             "transactionHash": "0x" + keccak(text=f"redeem:{uuid.uuid4()}").hex()})
    return {"redeemed": redeemed, "skipped": skipped}


def set_book(state: ExchangeState, body: Any, clock: Callable[[], float]) -> dict[str, Any]:
    """``POST /paper/book {"token_id", "mid"? | "bids"/"asks"}``: reseed both outcomes' books
    around a mid, or set one book's levels; the book as ``GET /book`` shows it."""
    if not isinstance(body, dict) or not body.get("token_id"):
        raise ApiError(400, "Invalid payload: token_id is required")
    tid = str(body["token_id"])
    with state.transaction() as doc:
        mk = market_of(doc, tid)
        if mk["closed"]:
            raise ApiError(400, "the market is resolved; it has no book")
        if body.get("mid") is not None:
            _reseed(doc, mk, tid, body["mid"])
        else:
            _set_levels(doc, tid, body)
        return book_view(doc, tid, clock())


def _reseed(doc: dict[str, Any], mk: dict[str, Any], tid: str, wanted: Any) -> None:
    tick = Decimal(mk["minimum_tick_size"])
    price = dec(wanted, "mid").quantize(tick)
    if not tick < price < 1:
        raise ApiError(400, "mid must be inside (tick, 1)")
    # Both outcomes move together: No is priced at 1 - Yes.
    for t in mk["tokens"]:
        m = price if t["token_id"] == tid else 1 - price
        bids, asks = ladder(m, tick)
        doc["books"][t["token_id"]] = {"bids": bids, "asks": asks, "last_trade_price": price_text(m)}


def _set_levels(doc: dict[str, Any], tid: str, body: dict[str, Any]) -> None:
    book = doc["books"].setdefault(tid, {"bids": [], "asks": [], "last_trade_price": "0.5"})
    for name in ("bids", "asks"):
        if name in body:
            levels: list[list[Any]] = []
            for item in body[name]:
                price, size = (item["price"], item["size"]) if isinstance(item, dict) else item
                levels.append([price_text(dec(price, "price")), int(dec(size, "size") * UNIT)])
            levels.sort(key=lambda lvl: Decimal(lvl[0]), reverse=name == "bids")
            book[name] = [lvl for lvl in levels if lvl[1] > 0]


def balance(state: ExchangeState, q: dict[str, str]) -> dict[str, Any]:
    """``GET /paper/balance?address=``: pUSD and shares, whether or not the address was funded."""
    doc = state.read()
    account = doc["accounts"].get((q.get("address") or "").lower())
    if account is None:
        return {"address": q.get("address"), "pusd": "0", "tokens": {}, "funded": False}
    return {"address": q.get("address"), "pusd": str(account["pusd"]),
            "tokens": {t: str(v) for t, v in account["tokens"].items()}, "funded": True}
