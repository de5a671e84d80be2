"""Accounts: pUSD and shares per address (raw 6-decimal units), cost basis and realised PnL per
token, what live orders reserve, and the balance-allowance the CLOB reports."""

from __future__ import annotations

from typing import Any

from tickloop_paper.polymarket.auth import EXCHANGE_V2, NEG_RISK_EXCHANGE_V2


def account_of(doc: dict[str, Any], address: str) -> dict[str, Any]:
    """The address's account, created empty on first use."""
    return doc["accounts"].setdefault(address.lower(), {"pusd": 0, "tokens": {}, "cost": {}, "bought": {},
                                                        "realized": {}})


def reserved(doc: dict[str, Any], address: str, asset: str) -> int:
    """What the address's live orders reserve of ``asset`` ("pusd" or a token id)."""
    return sum(o["_reserved"] for o in doc["orders"].values()
               if o["status"] == "LIVE" and o["maker_address"] == address and o["_reserve_asset"] == asset)


def available(doc: dict[str, Any], address: str, asset: str) -> int:
    """What the address holds of ``asset`` ("pusd" or a token id) less what its live orders reserve."""
    account = account_of(doc, address)
    balance = account["pusd"] if asset == "pusd" else account["tokens"].get(asset, 0)
    return balance - reserved(doc, address, asset)


def balance_allowance(doc: dict[str, Any], address: str, q: dict[str, str]) -> dict[str, Any]:
    account = account_of(doc, address)
    if (q.get("asset_type") or "COLLATERAL").upper() == "CONDITIONAL":
        balance = account["tokens"].get(q.get("token_id") or "", 0)
    else:
        balance = account["pusd"]
    unlimited = str(2**256 - 1)
    return {"balance": str(balance), "allowances": {EXCHANGE_V2: unlimited, NEG_RISK_EXCHANGE_V2: unlimited}}


def trade(account: dict[str, Any], tid: str, shares: int, usd: int) -> None:
    """Book one fill on an account: ``shares`` > 0 bought for ``usd``, < 0 sold for ``usd``."""
    held = account["tokens"].get(tid, 0)
    cost = account["cost"].get(tid, 0)
    if shares > 0:
        account["pusd"] -= usd
        account["tokens"][tid] = held + shares
        account["cost"][tid] = cost + usd
        account["bought"][tid] = account["bought"].get(tid, 0) + shares
    else:
        sold = -shares
        basis = cost * sold // held if held else 0
        account["pusd"] += usd
        account["realized"][tid] = account["realized"].get(tid, 0) + usd - basis
        left = held - sold
        if left > 0:
            account["tokens"][tid] = left
            account["cost"][tid] = cost - basis
        else:
            account["tokens"].pop(tid, None)
            account["cost"].pop(tid, None)
