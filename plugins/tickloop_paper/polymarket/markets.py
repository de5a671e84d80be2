"""The markets and their books: the seeded markets, ids derived like the real ones, lookups
(404 as the CLOB answers them), midpoints, and the market and book views the CLOB serves."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from eth_utils import keccak

from tickloop_paper.polymarket.wire import NO_BOOK, UNIT, ApiError, price_text, units

#: The seeded markets: (slug, question, event slug, Yes price, neg_risk, end date).
SEED_MARKETS = (
    ("will-it-rain-in-lisbon-on-march-1-2026", "Will it rain in Lisbon on 1 March 2026?",
     "lisbon-weather-march-2026", "0.40", False, "2026-03-01T12:00:00Z"),
    ("will-bitcoin-close-above-150k-on-june-30-2026", "Will Bitcoin close above $150,000 on 30 June 2026?",
     "bitcoin-price-june-2026", "0.25", False, "2026-06-30T23:59:59Z"),
    ("will-the-fed-cut-rates-in-march-2026", "Will the Fed cut rates at its March 2026 meeting?",
     "fed-decision-march-2026", "0.62", False, "2026-03-18T18:00:00Z"),
    ("will-arsenal-win-the-2025-26-champions-league", "Will Arsenal win the 2025-26 Champions League?",
     "champions-league-winner-2025-26", "0.18", True, "2026-05-30T21:00:00Z"),
)
#: Seeded depth per level, best level first (shares).
SEED_DEPTH = (100, 200, 300, 400, 500)
TICK = "0.01"
MIN_ORDER_SIZE = 5


def condition_id(slug: str) -> str:
    return "0x" + keccak(text=f"tickloop-paper:{slug}").hex()


def token_id(condition: str, index: int) -> str:
    """An outcome token id: a uint256 as a decimal string, like the real ones."""
    return str(int.from_bytes(keccak(bytes.fromhex(condition[2:]) + bytes([index])), "big"))


def ladder(mid: Decimal, tick: Decimal) -> tuple[list[list[Any]], list[list[Any]]]:
    """Seeded book around ``mid``: (bids, asks), best level first, sizes in raw shares."""
    bids, asks = [], []
    for k, depth in enumerate(SEED_DEPTH, start=1):
        bid, ask = mid - tick * k, mid + tick * k
        if bid >= tick:
            bids.append([price_text(bid), depth * UNIT])
        if ask <= 1 - tick:
            asks.append([price_text(ask), depth * UNIT])
    return bids, asks


def seed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The seeded markets and their books: (markets by condition id, books by token id)."""
    markets: dict[str, Any] = {}
    books: dict[str, Any] = {}
    tick = Decimal(TICK)
    for slug, question, event, yes_price, neg_risk, end in SEED_MARKETS:
        cid = condition_id(slug)
        yes, no = token_id(cid, 0), token_id(cid, 1)
        p = Decimal(yes_price)
        markets[cid] = {
            "condition_id": cid, "question_id": "0x" + keccak(text=f"question:{slug}").hex(),
            "question": question, "description": f"Paper market: {question}", "market_slug": slug,
            "event_slug": event, "end_date_iso": end, "icon": "", "image": "",
            "minimum_order_size": MIN_ORDER_SIZE, "minimum_tick_size": TICK, "neg_risk": neg_risk,
            "neg_risk_market_id": ("0x" + keccak(text=f"event:{event}").hex()) if neg_risk else "",
            "active": True, "closed": False, "accepting_orders": True, "enable_order_book": True,
            "archived": False, "resolved": False, "winner": None,
            "tokens": [{"token_id": yes, "outcome": "Yes", "price": price_text(p), "winner": False},
                       {"token_id": no, "outcome": "No", "price": price_text(1 - p), "winner": False}],
        }
        for tid, price in ((yes, p), (no, 1 - p)):
            bids, asks = ladder(price, tick)
            books[tid] = {"bids": bids, "asks": asks, "last_trade_price": price_text(price)}
    return markets, books


# -- lookups --------------------------------------------------------------------------------------


def token_param(q: dict[str, str]) -> str:
    tid = q.get("token_id") or ""
    if not tid.isdigit():
        raise ApiError(400, "Invalid token id")
    return tid


def market(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    mk = doc["markets"].get(cid) or doc["markets"].get(cid.lower())
    if mk is None:
        raise ApiError(404, "market not found")
    return mk


def market_of(doc: dict[str, Any], tid: str) -> dict[str, Any]:
    """The market token ``tid`` is an outcome of."""
    for mk in doc["markets"].values():
        if any(t["token_id"] == tid for t in mk["tokens"]):
            return mk
    raise ApiError(404, "market not found")


def outcome(mk: dict[str, Any], tid: str) -> str:
    return next(t["outcome"] for t in mk["tokens"] if t["token_id"] == tid)


def open_book(doc: dict[str, Any], tid: str) -> dict[str, Any]:
    """The token's book; 404 when the token is unknown or its market closed."""
    book = doc["books"].get(tid)
    if book is None:
        raise ApiError(404, NO_BOOK)
    return book


def mid(doc: dict[str, Any], tid: str) -> Decimal:
    """Midpoint of the book (one side alone, else the last trade, when a side is empty)."""
    book = doc["books"].get(tid)
    if book is None:
        mk = market_of(doc, tid)
        token = next(t for t in mk["tokens"] if t["token_id"] == tid)
        return Decimal(1) if token["winner"] else Decimal(0) if mk["resolved"] else Decimal(token["price"])
    bid = Decimal(book["bids"][0][0]) if book["bids"] else None
    ask = Decimal(book["asks"][0][0]) if book["asks"] else None
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return bid if bid is not None else ask if ask is not None else Decimal(book["last_trade_price"])


# -- views ----------------------------------------------------------------------------------------


def market_view(doc: dict[str, Any], mk: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in mk.items() if k not in ("resolved", "winner", "event_slug")}
    view["tokens"] = [{**t, "price": float(mid(doc, t["token_id"]))} for t in mk["tokens"]]
    view["minimum_tick_size"] = float(mk["minimum_tick_size"])
    view["rewards"] = {"rates": None, "min_size": 0, "max_spread": 0}
    view["tags"] = [mk["event_slug"]]
    return view


def book_view(doc: dict[str, Any], tid: str, now: float) -> dict[str, Any]:
    """The REST book at ``now`` (seconds), with its hash."""
    book = open_book(doc, tid)
    mk = market_of(doc, tid)
    view = {
        "market": mk["condition_id"], "asset_id": tid, "timestamp": str(int(now * 1000)), "hash": "",
        # The REST book lists the best price last: bids ascending, asks descending.
        "bids": [{"price": p, "size": units(s)} for p, s in reversed(book["bids"])],
        "asks": [{"price": p, "size": units(s)} for p, s in reversed(book["asks"])],
        "min_order_size": str(mk["minimum_order_size"]), "tick_size": mk["minimum_tick_size"],
        "neg_risk": mk["neg_risk"], "last_trade_price": book["last_trade_price"],
    }
    view["hash"] = hashlib.sha1(json.dumps(view, separators=(",", ":")).encode()).hexdigest()
    return view
