"""The Data API's positions: one row per token an address holds, valued at the midpoint, with its
cost basis and PnL (``GET /positions``), and their total (``GET /value``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tickloop_paper.polymarket.markets import market_of, mid
from tickloop_paper.polymarket.wire import UNIT, ApiError, dec
from tickloop_paper.state import ExchangeState


def positions(state: ExchangeState, q: dict[str, str]) -> list[dict[str, Any]]:
    """``GET /positions``: the ``user``'s positions, largest value first, filtered and paged as asked."""
    user = (q.get("user") or "").lower()
    if not user:
        raise ApiError(400, "user is required")
    threshold = dec(q.get("sizeThreshold") or "1", "sizeThreshold")
    markets = {m.strip().lower() for m in (q.get("market") or "").split(",") if m.strip()}
    redeemable = (q.get("redeemable") or "").lower()
    limit = int(q.get("limit") or 100)
    offset = int(q.get("offset") or 0)
    doc = state.read()
    account = doc["accounts"].get(user)
    if account is None:
        return []
    rows = []
    for tid, held in account.get("tokens", {}).items():
        size = Decimal(held) / UNIT
        if held <= 0 or size < threshold:
            continue
        mk = market_of(doc, tid)
        if markets and mk["condition_id"].lower() not in markets:
            continue
        if redeemable in ("true", "false") and mk["resolved"] != (redeemable == "true"):
            continue
        rows.append(_row(doc, account, user, tid, mk, size))
    rows.sort(key=lambda row: -row["currentValue"])
    return rows[offset:offset + limit]


def _row(doc: dict[str, Any], account: dict[str, Any], user: str, tid: str, mk: dict[str, Any],
         size: Decimal) -> dict[str, Any]:
    index = next(i for i, t in enumerate(mk["tokens"]) if t["token_id"] == tid)
    opposite = mk["tokens"][1 - index]
    cost = Decimal(account["cost"].get(tid, 0)) / UNIT
    price = mid(doc, tid)
    value = size * price
    return {
        "proxyWallet": user, "asset": tid, "conditionId": mk["condition_id"], "size": float(size),
        "avgPrice": float(cost / size) if size else 0.0, "initialValue": float(cost),
        "currentValue": float(value), "cashPnl": float(value - cost),
        "percentPnl": float((value - cost) / cost * 100) if cost else 0.0,
        "totalBought": float(Decimal(account["bought"].get(tid, 0)) / UNIT),
        "realizedPnl": float(Decimal(account["realized"].get(tid, 0)) / UNIT),
        "percentRealizedPnl": 0.0, "curPrice": float(price), "redeemable": mk["resolved"],
        "mergeable": not mk["resolved"] and account["tokens"].get(opposite["token_id"], 0) > 0,
        "title": mk["question"], "slug": mk["market_slug"], "icon": mk["icon"], "eventSlug": mk["event_slug"],
        "outcome": mk["tokens"][index]["outcome"], "outcomeIndex": index,
        "oppositeOutcome": opposite["outcome"], "oppositeAsset": opposite["token_id"],
        "endDate": mk["end_date_iso"][:10], "negativeRisk": mk["neg_risk"],
    }


def value(state: ExchangeState, q: dict[str, str]) -> list[dict[str, Any]]:
    """``GET /value``: the total value of the ``user``'s positions."""
    user = (q.get("user") or "").lower()
    rows = positions(state, q) if user else []
    return [{"user": user, "value": round(sum(r["currentValue"] for r in rows), 6)}]
