"""dca: dollar-cost averaging. Every hour (on the hour) it buys ``buy_amount_usd`` of ``token``
with USDC, at most ``max_orders_per_day`` times per UTC day.

The daily cap is kept in session memory: ``orders:<YYYY-MM-DD>`` holds the number of buys of
that UTC day and ``order:<YYYY-MM-DD>:<n>`` the record of each. Placing the swap itself comes with
the swap venue; until then each run logs "would buy ..." and records the intended order.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickloop import AgentContext

STARTING_ASSET = "USDC"


def run(agent: AgentContext) -> None:
    """Record (or, with ``dry_run``, only log) one buy unless today's cap is reached."""
    settings = agent.settings
    amount = float(settings.get("buy_amount_usd") or 0)
    cap = int(settings.get("max_orders_per_day") or 0)
    slippage = float(settings.get("slippage_tolerance") or 0)
    token = settings.get("token") or "ETH"
    treasury = settings.get("treasury") or None
    dry_run = bool(settings.get("dry_run"))
    note = settings.get("note") or ""

    if amount <= 0:
        agent.log(f"buy_amount_usd must be greater than 0, got {amount}; nothing to do", error=True)
        return

    now = datetime.now(timezone.utc)
    day = now.strftime("%Y-%m-%d")
    placed = _orders_today(agent, day)
    if placed is None:
        return  # memory could not be read; never risk going over the cap
    if placed >= cap:
        agent.log(f"Daily cap reached: {placed} of {cap} orders on {day} (UTC); next buy tomorrow.")
        return

    destination = f" to treasury {treasury}" if treasury else ""
    intent = (f"would buy ${amount:,.2f} of {token} with {STARTING_ASSET} "
              f"(slippage tolerance {slippage:g}%){destination}")
    if dry_run:
        agent.log(f"Dry run: {intent}; not recorded.")
        return

    number = placed + 1
    record = {
        "day": day,
        "number": number,
        "at": now.isoformat(timespec="seconds"),
        "token": token,
        "amountUsd": amount,
        "slippagePercent": slippage,
        "treasury": treasury,
        "note": note,
        "mode": getattr(agent, "executionMode", "auto"),
        "status": "intended",
    }
    saved = agent.memory.set(f"order:{day}:{number}", json.dumps(record, separators=(",", ":")))
    counted = agent.memory.set(f"orders:{day}", str(number))
    if not (saved.success and counted.success):
        agent.log(f"Could not record order {number} of {day}: {saved.error or counted.error}", error=True)
        return
    agent.log(f"Order {number} of {cap} on {day}: {intent}" + (f" [{note}]" if note else ""))


def unwind(agent: AgentContext, portfolio: Any) -> None:
    """Log what would be sold back to USDC: every balance that is not the starting asset."""
    balances = list(_field(portfolio, "balances") or [])
    to_sell = [b for b in balances if str(_field(b, "symbol") or "").upper() != STARTING_ASSET]
    if not to_sell:
        agent.log(f"Unwinding: nothing to sell; holdings are already {STARTING_ASSET}.")
        return
    for balance in to_sell:
        symbol = _field(balance, "symbol") or _field(balance, "tokenAddress") or "?"
        amount = _field(balance, "amountRaw")
        agent.log(f"Unwinding: would sell {amount if amount is not None else 'all'} (raw) {symbol} "
                  f"for {STARTING_ASSET}")


def _orders_today(agent: AgentContext, day: str) -> int | None:
    """How many buys are recorded for ``day``; None (and an error log) when memory fails."""
    got = agent.memory.get(f"orders:{day}")
    if not got.success:
        agent.log(f"Could not read today's order count: {got.error}", error=True)
        return None
    try:
        return int(got.data.value or 0)
    except ValueError:
        agent.log(f"Memory key orders:{day} holds {got.data.value!r}, not a count", error=True)
        return None


def _field(item: Any, name: str) -> Any:
    """A field of a portfolio item, whether it is a mapping or an object."""
    if isinstance(item, dict):
        return item.get(name)
    try:
        return item[name]
    except (TypeError, KeyError, IndexError):
        return getattr(item, name, None)
