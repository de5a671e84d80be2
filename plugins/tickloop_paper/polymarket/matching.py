"""Matching a posted order against the seeded book: which levels it crosses, what it takes from
each (in lots of 0.01 shares; a market buy by its pUSD budget), FOK/FAK/post-only outcomes,
and the trade it books: the book consumed, the account charged, the trade recorded."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs
from eth_utils import keccak

from tickloop_paper.polymarket.accounts import account_of, trade
from tickloop_paper.polymarket.markets import outcome
from tickloop_paper.polymarket.wire import FAK_UNMATCHED, FOK_UNFILLED, LOT, ApiError, price_text, units
from tickloop_paper.server import Faults

#: Orders and trades kept once they are done (the live ones are always kept).
KEEP_DONE = 1000


@attrs.frozen
class Ticket:
    """A posted order that passed its checks: what matching and the order record need."""

    order_id: str
    tid: str
    market: dict[str, Any]  # the token's market
    side: str  # "BUY" | "SELL"
    order_type: str  # one of FOK, FAK, GTC, GTD
    post_only: bool
    maker_amount: int
    taker_amount: int
    expiration: int
    limit: Decimal
    shares: int

    @property
    def by_budget(self) -> bool:
        """A market buy (FOK/FAK) spends its ``makerAmount`` of pUSD; everything else trades shares."""
        return self.side == "BUY" and self.order_type in ("FOK", "FAK")


@attrs.frozen
class Match:
    """What an order takes from the book: (price, shares, pUSD) per level, best first."""

    fills: tuple[tuple[str, int, int], ...]

    @property
    def shares(self) -> int:
        return sum(f[1] for f in self.fills)

    @property
    def usd(self) -> int:
        return sum(f[2] for f in self.fills)


def _levels(book: dict[str, Any], side: str) -> list[list[Any]]:
    """The side of the book an order of ``side`` takes from, best level first."""
    return book["asks"] if side == "BUY" else book["bids"]


def match(book: dict[str, Any], ticket: Ticket, faults: Faults) -> Match:
    """What ``ticket`` takes from ``book`` (the book is not changed yet); ApiError for a post-only
    order that crosses, an FOK that cannot fill completely and an FAK that finds nothing."""
    limit = ticket.limit
    crossing = [lvl for lvl in _levels(book, ticket.side)
                if (Decimal(lvl[0]) <= limit if ticket.side == "BUY" else Decimal(lvl[0]) >= limit)]
    if ticket.post_only and crossing:
        raise ApiError(400, "invalid post-only order: order crosses book")
    quantity = ticket.maker_amount if ticket.by_budget else ticket.shares  # pUSD for market buys, else shares
    cap = quantity
    if crossing and ticket.order_type in ("FOK", "FAK") and faults.take("no_match", "/order") is not None:
        crossing = []
    if crossing:
        partial = faults.take("partial_fill", "/order")
        if partial is not None:
            fraction = Decimal(str(partial.params.get("fraction", 0.5)))
            cap = int(Decimal(quantity) * fraction)
            if not ticket.by_budget:
                cap -= cap % LOT  # shares trade in lots
    fills, complete = _walk(crossing, cap, ticket.by_budget)
    complete = complete and cap == quantity
    if ticket.order_type == "FOK" and not complete:
        raise ApiError(400, FOK_UNFILLED)
    if ticket.order_type == "FAK" and not fills:
        raise ApiError(400, FAK_UNMATCHED)
    return Match(tuple(fills))


def _walk(crossing: list[list[Any]], cap: int, by_budget: bool) -> tuple[list[tuple[str, int, int]], bool]:
    """Take up to ``cap`` (pUSD by budget, else shares) from the crossing levels, best first;
    returns the fills and whether the order got all it asked for."""
    fills: list[tuple[str, int, int]] = []  # (price, shares, usd)
    remaining = cap
    spent = False  # a market buy stopped because its budget ran out (not the liquidity)
    for lvl in crossing:
        price = Decimal(lvl[0])
        if by_budget:
            affordable = int(Decimal(remaining) / (price * LOT)) * LOT
            take = min(lvl[1], affordable)
            spent = affordable < lvl[1]
        else:
            take = min(lvl[1], remaining)
        if take > 0:
            usd = int((price * take).to_integral_value(ROUND_HALF_EVEN))
            fills.append((lvl[0], take, usd))
            remaining -= usd if by_budget else take
        if spent or (not by_budget and remaining <= 0):
            break
    if by_budget and fills and remaining < Decimal(fills[-1][0]) * LOT:
        spent = True
    return fills, (spent if by_budget else remaining == 0)


def execute(doc: dict[str, Any], address: str, api_key: str, ticket: Ticket, matched: Match,
            now: int) -> tuple[list[str], list[str]]:
    """Take the fills from the book and book them on the account as one trade: (trade ids, transaction hashes)."""
    if not matched.fills:
        return [], []
    book = doc["books"][ticket.tid]
    levels = _levels(book, ticket.side)
    for price, take, _ in matched.fills:
        for lvl in levels:
            if lvl[0] == price:
                lvl[1] -= take
                break
    levels[:] = [lvl for lvl in levels if lvl[1] > 0]
    book["last_trade_price"] = matched.fills[-1][0]
    shares, usd = matched.shares, matched.usd
    trade(account_of(doc, address), ticket.tid, shares if ticket.side == "BUY" else -shares, usd)
    trade_id = str(uuid.uuid4())
    tx_hash = "0x" + keccak(text=f"tx:{trade_id}").hex()
    mk = ticket.market
    doc["trades"].append({
        "id": trade_id, "taker_order_id": ticket.order_id, "market": mk["condition_id"], "asset_id": ticket.tid,
        "side": ticket.side, "size": units(shares),
        "price": price_text(Decimal(usd) / Decimal(shares)), "fee_rate_bps": "0",
        "status": "CONFIRMED", "match_time": str(now), "last_update": str(now), "outcome": outcome(mk, ticket.tid),
        "owner": api_key, "maker_address": address, "transaction_hash": tx_hash, "bucket_index": 0,
        "type": "TAKER", "trader_side": "TAKER", "maker_orders": [],
    })
    del doc["trades"][:-KEEP_DONE]
    return [trade_id], [tx_hash]
