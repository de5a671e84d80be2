"""``agent.portfolio``: what a session holds, as Circuit's ``SessionPortfolio`` shapes it."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Portfolio:
    """A snapshot of a session's balances and positions, taken at run start.

    ``balances`` items carry ``network, assetKey, tokenAddress, tokenId, symbol, decimals,
    amountRaw, valueUsd, assetClass``; ``positions`` items carry ``network, assetKey, coin, size,
    averageEntryPrice, markPriceUsd, unrealizedPnlUsd, polymarketMetadata``.
    """

    balances: tuple[Any, ...] = ()
    positions: tuple[Any, ...] = ()

    @classmethod
    def empty(cls) -> Portfolio:
        return cls()

    def to_dict(self) -> dict[str, list[Any]]:
        return {"balances": list(self.balances), "positions": list(self.positions)}
