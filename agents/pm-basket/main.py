"""pm-basket: buys a small basket of cheap Polymarket outcomes and holds them.

Each run reads the session's Polymarket positions, and while it holds fewer than
``basket_size`` outcomes it buys ``amount_usd`` of the cheapest candidates priced below
``max_price``. Candidates are the ``token_ids`` setting, or every open market the venue lists
(``agent.platforms.polymarket.markets()``, a tickloop method that also gives the prices). Trading
uses Circuit's Polymarket calls only (``market_order``, ``positions``, ``redeem_positions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickloop import AgentContext


def run(agent: AgentContext) -> None:
    """Top the basket up to ``basket_size`` outcomes."""
    settings = agent.settings
    max_price = float(settings.get("max_price") or 0)
    amount = float(settings.get("amount_usd") or 0)
    size = int(settings.get("basket_size") or 0)
    side = settings.get("outcome") or "Yes"
    pm = agent.platforms.polymarket

    if amount <= 0 or size <= 0:
        agent.log(f"amount_usd ({amount}) and basket_size ({size}) must be greater than 0; nothing to do", error=True)
        return
    held = pm.positions()
    if not held.success:
        agent.log(f"Could not read positions: {held.error}", error=True)
        return
    holding = {str(p["tokenId"]): p for p in held.data["positions"]}
    held_markets = {str(p["conditionId"]) for p in holding.values()}
    if len(holding) >= size:
        agent.log(f"The basket is full: {len(holding)} of {size} outcomes held, worth"
                  f" ${held.data['totalValue']:.2f}.")
        return

    candidates = _candidates(agent, side)
    if candidates is None:
        return
    cheap = sorted((c for c in candidates if c["price"] < max_price and c["tokenId"] not in holding
                    and c["conditionId"] not in held_markets), key=lambda c: c["price"])
    if not cheap:
        which = "outcome" if side == "any" else f"{side} outcome"
        agent.log(f"No {which} is priced below {max_price}; holding {len(holding)} of {size}.")
        return
    for candidate in cheap[:size - len(holding)]:
        label = f"{candidate['outcome']!r} on {candidate['question']!r} at {candidate['price']:.2f}"
        result = pm.market_order({"tokenId": candidate["tokenId"], "size": amount, "side": "BUY"})
        if not result.success:
            agent.log(f"Buying ${amount:.2f} of {label} failed: {result.error}", error=True)
        elif result.data.get("suggested"):
            agent.log(f"Suggested buying ${amount:.2f} of {label} (suggestion {result.data['suggestionId']}).")
        else:
            info = result.data["orderInfo"]
            agent.log(f"Bought {info['size']} shares of {label} for ${float(info['totalPriceUsd']):.2f}"
                      f" (order {info['orderId'][:10]}...).")


def unwind(agent: AgentContext, portfolio: Any) -> None:
    """Redeem what resolved; tickloop's closer sells the rest."""
    pm = agent.platforms.polymarket
    held = pm.positions()
    if not held.success:
        agent.log(f"Could not read positions: {held.error}; the closer closes what is open", error=True)
        return
    resolved = [str(p["tokenId"]) for p in held.data["positions"] if p["isRedeemable"]]
    if resolved:
        result = pm.redeem_positions({"tokenIds": resolved})
        agent.log(f"Redeeming {len(resolved)} resolved outcome(s): "
                  + ("ok" if result.success else f"failed: {result.error}"), error=not result.success)
    rest = len(held.data["positions"]) - len(resolved)
    agent.log(f"Unwinding: {rest} open outcome(s) left to the closer.")


def _candidates(agent: AgentContext, side: str) -> list[dict[str, Any]] | None:
    """[{tokenId, conditionId, outcome, question, price}] to choose from; None (logged) on failure."""
    wanted = [t.strip() for t in str(agent.settings.get("token_ids") or "").split(",") if t.strip()]
    pm = agent.platforms.polymarket
    markets = pm.markets() if hasattr(pm, "markets") else None
    if markets is None or not markets.success:
        if not wanted:
            agent.log("Set token_ids: this venue cannot list its markets"
                      + (f" ({markets.error})" if markets is not None else ""), error=True)
            return None
        listed: list[Any] = []
    else:
        listed = list(markets.data)
    found = []
    for market in listed:
        for token in market["tokens"]:
            if wanted and str(token["tokenId"]) not in wanted:
                continue
            if side != "any" and token["outcome"] != side:
                continue
            if token.get("price") is None:
                continue
            found.append({"tokenId": str(token["tokenId"]), "conditionId": str(market["conditionId"]),
                          "outcome": token["outcome"], "question": market["question"], "price": float(token["price"])})
    missing = [t for t in wanted if t not in {c["tokenId"] for c in found}]
    if missing:
        agent.log(f"Not listed as open markets (skipped): {', '.join(missing)}")
    return found
