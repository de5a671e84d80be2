"""Accounts: perp and spot USDC, one netted cross-margin position per coin and its leverage, the
margin summary (``clearinghouseState``), and the actions that change leverage or move USDC."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tickloop_paper.hyperliquid.market import asset_spec, spec
from tickloop_paper.hyperliquid.orders import open_orders
from tickloop_paper.hyperliquid.wire import ZERO, Call, D, err, fmt, ok, usd
from tickloop_paper.server import Response

DEFAULT_LEVERAGE = 20


def new_account(master: str | None = None) -> dict[str, Any]:
    return {"usdc": "0.0", "spot_usdc": "0.0", "positions": {}, "leverage": {}, "open": [], "fills": [],
            "master": master, "scheduledCancel": None}


def szi(account: dict[str, Any], coin: str) -> Decimal:
    """The account's signed position in ``coin`` (0 when flat)."""
    held = account["positions"].get(coin)
    return D(held["szi"]) if held else ZERO


def _default_leverage(coin_spec: dict[str, Any]) -> int:
    return min(DEFAULT_LEVERAGE, coin_spec["maxLeverage"])


def leverage(doc: dict[str, Any], account: dict[str, Any], coin: str) -> Decimal:
    chosen = account["leverage"].get(coin)
    return D(chosen["value"] if chosen else _default_leverage(spec(doc, coin)))


def clearinghouse(doc: dict[str, Any], user: str, now: int) -> dict[str, Any]:
    """``clearinghouseState``: the account's value, margin and positions at the mids."""
    account = doc["accounts"].get(user)
    usdc = D(account["usdc"]) if account else ZERO
    rows = _position_rows(doc, account) if account else []
    value = usdc + sum((r["upnl"] for r in rows), ZERO)
    margin = sum((r["margin"] for r in rows), ZERO)
    notional = sum((r["notional"] for r in rows), ZERO)
    signed_notional = sum((r["szi"] * r["mid"] for r in rows), ZERO)
    maintenance = sum((r["maintenance"] for r in rows), ZERO)
    positions = []
    for r in rows:
        liq = _liquidation_price(r, rows, usdc)
        margin_at_entry = abs(r["szi"]) * r["entry"] / r["leverage"]
        positions.append({"type": "oneWay", "position": {
            "coin": r["coin"], "szi": fmt(r["szi"]), "entryPx": fmt(r["entry"]),
            "leverage": {"type": r["leverage_type"], "value": int(r["leverage"])},
            "liquidationPx": fmt(liq) if liq is not None else None,
            "marginUsed": fmt(usd(r["margin"])), "positionValue": fmt(usd(r["notional"])),
            "returnOnEquity": fmt((r["upnl"] / margin_at_entry).quantize(D("0.0000000001")))
            if margin_at_entry else "0.0",
            "unrealizedPnl": fmt(usd(r["upnl"])), "maxLeverage": r["max_leverage"],
            "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
        }})
    summary = {"accountValue": fmt(usd(value)), "totalNtlPos": fmt(usd(notional)),
               "totalRawUsd": fmt(usd(value - signed_notional)), "totalMarginUsed": fmt(usd(margin))}
    return {"marginSummary": summary, "crossMarginSummary": dict(summary),
            "crossMaintenanceMarginUsed": fmt(usd(maintenance)),
            "withdrawable": fmt(usd(max(ZERO, value - margin - orders_margin(doc, user)))),
            "assetPositions": positions, "time": now}


def _position_rows(doc: dict[str, Any], account: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for coin in sorted(account["positions"]):
        p = account["positions"][coin]
        size, entry, mid = D(p["szi"]), D(p["entryPx"]), D(doc["mids"][coin])
        coin_spec = spec(doc, coin)
        lev = account["leverage"].get(coin) or {"type": "cross", "value": _default_leverage(coin_spec)}
        value = D(lev["value"])
        notional = abs(size) * mid
        rows.append({"coin": coin, "szi": size, "entry": entry, "mid": mid, "notional": notional,
                     "upnl": size * (mid - entry), "margin": notional / value, "leverage": value,
                     "leverage_type": lev["type"], "max_leverage": coin_spec["maxLeverage"],
                     "mm_rate": D(1) / (2 * D(coin_spec["maxLeverage"])),
                     "maintenance": notional / (2 * D(coin_spec["maxLeverage"]))})
    return rows


def _liquidation_price(row: dict[str, Any], rows: list[dict[str, Any]], usdc: Decimal) -> Decimal | None:
    """Where account equity meets maintenance margin, the other positions at their mids."""
    others = [r for r in rows if r is not row]
    equity = usdc + sum((r["upnl"] for r in others), ZERO)
    maintenance = sum((r["maintenance"] for r in others), ZERO)
    size, mm = row["szi"], row["mm_rate"]
    denominator = size - abs(size) * mm
    if denominator == 0:
        return None
    px = (maintenance - equity + size * row["entry"]) / denominator
    return usd(px) if px > 0 else None


def orders_margin(doc: dict[str, Any], user: str) -> Decimal:
    """The margin the account's open orders (other than reduce-only) hold."""
    account = doc["accounts"].get(user)
    if account is None:
        return ZERO
    total = ZERO
    for rec in open_orders(doc, user):
        order = rec["order"]
        if order["reduceOnly"]:
            continue
        total += D(order["sz"]) * D(order["limitPx"]) / leverage(doc, account, order["coin"])
    return total


def margin_ok(doc: dict[str, Any], user: str, coin: str, signed: Decimal, price: Decimal) -> bool:
    """Whether the account's value covers its margin once this order adds to a position."""
    account = doc["accounts"][user]
    position = szi(account, coin)
    added = abs(position + signed) - abs(position)
    if added <= 0:
        return True
    state = clearinghouse(doc, user, 0)
    used = D(state["marginSummary"]["totalMarginUsed"]) + orders_margin(doc, user)
    needed = added * price / leverage(doc, account, coin)
    return used + needed <= D(state["marginSummary"]["accountValue"])


# -- /exchange actions ----------------------------------------------------------------------------


def update_leverage(call: Call) -> Response:
    asset, value = call.action.get("asset"), call.action.get("leverage")
    coin_spec = asset_spec(call.doc, asset)
    if coin_spec is None:
        return err(f"Invalid asset {asset}.")
    if not isinstance(value, int) or not 1 <= value <= coin_spec["maxLeverage"]:
        return err(f"Invalid leverage value {value}: {coin_spec['name']} allows 1 to {coin_spec['maxLeverage']}.")
    call.doc["accounts"][call.user]["leverage"][coin_spec["name"]] = {
        "type": "cross" if call.action.get("isCross", True) else "isolated", "value": value}
    return ok({"type": "default"})


def transfer_usd(doc: dict[str, Any], signer: str, action: dict[str, Any], now: int) -> Response:
    """``usdClassTransfer`` (user-signed): move USDC between the perp and the spot balance."""
    account = doc["accounts"][signer]
    text = str(action.get("amount", "")).split(" ")[0]
    try:
        amount = D(text)
    except InvalidOperation:
        return err(f"invalid amount {action.get('amount')!r}")
    if amount <= 0:
        return err(f"invalid amount {action.get('amount')!r}")
    if action.get("toPerp"):
        if D(account["spot_usdc"]) < amount:
            return err("Insufficient balance for transfer")
        account["spot_usdc"] = fmt(D(account["spot_usdc"]) - amount)
        account["usdc"] = fmt(D(account["usdc"]) + amount)
    else:
        withdrawable = D(clearinghouse(doc, signer, now)["withdrawable"])
        if withdrawable < amount:
            return err("Insufficient balance for transfer")
        account["usdc"] = fmt(D(account["usdc"]) - amount)
        account["spot_usdc"] = fmt(D(account["spot_usdc"]) + amount)
    return ok({"type": "default"})


# -- /info types about accounts (handlers: doc, user, body, now) ----------------------------------


def clearinghouse_info(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    return clearinghouse(doc, user, now)


def spot_clearinghouse(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    account = doc["accounts"].get(user)
    balances = [] if account is None else [{"coin": "USDC", "token": 0, "total": account["spot_usdc"],
                                            "hold": "0.0", "entryNtl": "0.0"}]
    return {"balances": balances}


def user_fills(doc: dict[str, Any], user: str, body: dict[str, Any], now: int) -> Any:
    account = doc["accounts"].get(user)
    return list(reversed(account["fills"])) if account else []
