"""Actions: what an agent asks a venue to do, before anyone decides whether it happens.

Every value- or signature-producing call (orders, cancels, transfers, redeems, swaps, raw
transactions) becomes an :class:`Action`. The router (``tickloop_route_action``) decides whether
it executes now (auto mode) or becomes a suggestion a person approves (manual mode); either way
the same :class:`Action` reaches the venue, so an approved suggestion executes exactly what the
agent asked for. An action is an unsigned intent: it carries the request, never a signature.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

#: What an action does, across venues. A venue may use others; these are the ones tickloop's
#: own code (closers, the example router) understands.
ORDER = "order"
CANCEL = "cancel"
TRANSFER = "transfer"
REDEEM = "redeem"
SWAP = "swap"
TRANSACTION = "transaction"
MESSAGE = "message"


@attrs.frozen
class Action:
    """One intent of one session on one venue, serialisable (:func:`tickloop.jsondata.to_data`).

    ``method`` is the agent-facing method that produced it (``place_order``); ``params`` is the
    request as the agent wrote it, in the Circuit wire shape (``{"coin": "BTC", "side": "buy",
    ...}``), which is also what a manual-mode suggestion shows as its ``details``.
    """

    venue: str
    kind: str
    method: str
    params: dict[str, Any] = attrs.field(factory=dict, hash=False)
    session_id: int = 0
    wallet: str = ""
    #: what the action is worth in USD, as far as the venue can tell (None: unknown); routers use
    #: it for thresholds ("manual above $500").
    notional_usd: Decimal | None = None
    #: the suggestion's expiry the agent asked for (``expiresAt``); ignored in auto mode.
    expires_at: datetime | None = None
    #: a caption (``message``, at most 250 characters), shown with a suggestion.
    message: str | None = None

    def describe(self) -> str:
        """One line for people: ``hyperliquid place_order coin=BTC side=buy size=0.01``."""
        shown = " ".join(f"{k}={_abbreviated(v)}" for k, v in self.params.items() if k not in ("expiresAt", "message"))
        return f"{self.venue} {self.method} {shown}".rstrip()


def _abbreviated(value: object) -> str:
    """Long values (Polymarket token ids are 77 digits) shortened to their ends, for one line."""
    text = str(value)
    return text if len(text) <= 24 else f"{text[:10]}…{text[-6:]}"


@attrs.frozen
class Fill:
    """A trade a venue reports for an executed action, attributed to the action's session.

    ``size`` is signed (bought > 0, sold < 0) in the instrument's units (perp coins, spot
    tokens, outcome shares); ``price`` and ``fee`` are in the cash asset (USD stablecoins).
    ``contract`` tells how the fill moves cash: ``perp`` (margin: only realised PnL and fees
    move cash) or ``spot`` (the traded value moves cash: buying spends ``size * price``).
    """

    venue: str
    network: str
    asset_key: str  # the instrument's key in the portfolio (coin for perps, token id for outcomes)
    coin: str  # what people call it: "BTC", or the outcome label "Yes"
    size: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    contract: str = "perp"  # "perp" | "spot"
    cash_network: str = ""
    cash_asset: str = ""  # the cash asset's key (token address) whose balance the fill moves
    cash_symbol: str = "USDC"
    cash_decimals: int = 6
    order_id: str | None = None
    at: datetime | None = None
    #: venue details kept with the position (Polymarket: question, outcome, conditionId ...).
    meta: dict[str, Any] | None = attrs.field(default=None, hash=False)


@attrs.frozen
class Execution:
    """What executing an action produced: the agent's answer and the fills to put in the ledger.

    ``data`` is what the agent-facing method returns as ``result.data`` in auto mode (Circuit's
    response shape); ``error`` set means the venue refused or failed, and ``data`` is ignored.
    ``order_ids`` are orders the action left resting, owned by the action's session.
    """

    data: Any = None
    error: str | None = None
    fills: tuple[Fill, ...] = ()
    order_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str) -> Execution:
        return cls(error=error)
