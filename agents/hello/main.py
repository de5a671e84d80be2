"""hello: says hello on every run and counts its runs in memory.

Runs unmodified on tickloop and, with the import under TYPE_CHECKING changed, on the Circuit SDK:
it only uses ``agent.settings``, ``agent.memory`` and ``agent.log``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickloop import AgentContext


def run(agent: AgentContext) -> None:
    """Count this run (per session and across all sessions of the agent) and log a greeting."""
    runs = _count(agent, "runs")
    total = _count(agent, "total-runs", shared=True)
    greeting = agent.settings.get("greeting") or "Hello"
    message = f"{greeting}! This is run {runs} of this session ({total} across all sessions)."
    if agent.settings.get("loud"):
        message = message.upper()
    agent.log(message)


def unwind(agent: AgentContext, portfolio: Any) -> None:
    """hello holds nothing of its own; log what the runtime asked it to close."""
    balances = list(_field(portfolio, "balances") or [])
    positions = list(_field(portfolio, "positions") or [])
    if not balances and not positions:
        agent.log("Unwinding: nothing to close.")
        return
    for balance in balances:
        agent.log(f"Unwinding: would close balance {_describe(balance)}")
    for position in positions:
        agent.log(f"Unwinding: would close position {_describe(position)}")


def _count(agent: AgentContext, key: str, *, shared: bool = False) -> int:
    """Add one to the counter stored under ``key`` and return the new value."""
    got = agent.memory.get(key, shared=shared)
    previous = 0
    if got.success and got.data.value:
        try:
            previous = int(got.data.value)
        except ValueError:
            agent.log(f"Memory key {key} held {got.data.value!r}, not a number; starting again at 0", error=True)
    elif not got.success:
        agent.log(f"Could not read memory key {key}: {got.error}", error=True)
    count = previous + 1
    saved = agent.memory.set(key, str(count), shared=shared)
    if not saved.success:
        agent.log(f"Could not save memory key {key}: {saved.error}", error=True)
    return count


def _field(item: Any, name: str) -> Any:
    """A field of a portfolio item, whether it is a mapping or an object."""
    if isinstance(item, dict):
        return item.get(name)
    try:
        return item[name]
    except (TypeError, KeyError, IndexError):
        return getattr(item, name, None)


def _describe(item: Any) -> str:
    symbol = _field(item, "symbol") or _field(item, "coin") or _field(item, "assetKey") or "?"
    amount = _field(item, "amountRaw") or _field(item, "size")
    network = _field(item, "network")
    text = str(symbol)
    if amount is not None:
        text += f" {amount}"
    if network:
        text += f" on {network}"
    return text
