"""A simulated venue and closer for tests of routing, suggestions, the ledger and unwind.

Registered as a plugin (``plugins=[sim_venue]`` in-process, or ``[plugins] load =
["sim_venue"]`` so worker processes load it too). It speaks the agent-facing shape of
Circuit's Hyperliquid API (``place_order``, ``delete_order``, ``positions``, ``open_orders``),
fills market orders at once at the mid, rests limit orders that do not cross, and appends
every action it executes to a JSON-lines journal (``SIM_VENUE_JOURNAL``, else a list in
memory): the venue-side record that manual mode sends nothing until approval.

It is deliberately small; the paper exchanges that speak the real protocols are a later
issue's (tickloop_paper).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import tickloop
from tickloop.actions import CANCEL, ORDER, Action, Execution, Fill
from tickloop.registry import Backend
from tickloop.results import Result
from tickloop.venues import CloseReport, Residue

NAME = "sim"
NETWORK = "hypercore:perp"
CASH = "0x0000000000000000000000000000000000000000"
FEE_RATE = Decimal("0.00035")

#: Mid prices by coin; tests move them.
MIDS: dict[str, Decimal] = {"BTC": Decimal(50000), "ETH": Decimal(3000)}
#: Every executed action, in order (when no journal file is configured).
EXECUTED: list[dict[str, Any]] = []
#: Coins whose orders the venue refuses ("could not immediately match"), for closer tests.
REFUSE: set[str] = set()
_ids = itertools.count(1)
_lock = threading.Lock()


def reset() -> None:
    EXECUTED.clear()
    REFUSE.clear()
    MIDS.clear()
    MIDS.update({"BTC": Decimal(50000), "ETH": Decimal(3000)})


def journal() -> list[dict[str, Any]]:
    """Everything the venue executed (from the journal file when one is configured)."""
    path = os.environ.get("SIM_VENUE_JOURNAL")
    if not path:
        return list(EXECUTED)
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get("SIM_VENUE_JOURNAL")
    if path:
        with _lock, open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
    else:
        EXECUTED.append(entry)


class Api:
    """``agent.platforms.sim``: Circuit's Hyperliquid method names and result shapes."""

    def __init__(self, venue: SimVenue, session: Any, gateway: Any) -> None:
        self._venue, self._session, self._gateway = venue, session, gateway

    def place_order(self, request: dict[str, Any]) -> Result:
        try:
            size = Decimal(str(request["size"]))
            price = Decimal(str(request["price"]))
            side = request["side"]
            request["coin"]  # required: a missing coin is a bad request
        except (KeyError, TypeError, ArithmeticError) as exc:
            return Result.fail(f"place_order: bad request: {exc}")
        if side not in ("buy", "sell") or size <= 0:
            return Result.fail("place_order: side must be buy or sell and size positive")
        expires = request.get("expiresAt")
        from datetime import datetime

        action = Action(venue=NAME, kind=ORDER, method="place_order", params=dict(request),
                        session_id=self._session.id, wallet=self._session.wallet, notional_usd=size * price,
                        expires_at=datetime.fromisoformat(expires) if expires else None,
                        message=request.get("message"))
        return self._gateway.submit(self._session, action)

    def delete_order(self, order_id: str, coin: str) -> Result:
        action = Action(venue=NAME, kind=CANCEL, method="delete_order",
                        params={"orderId": str(order_id), "coin": coin}, session_id=self._session.id,
                        wallet=self._session.wallet)
        return self._gateway.submit(self._session, action)

    def positions(self) -> Result:
        portfolio = self._gateway.portfolio(self._session.id)
        return Result.ok([{"coin": p.coin, "side": "long" if Decimal(p.size) > 0 else "short",
                           "size": str(abs(Decimal(p.size))), "entryPrice": p.averageEntryPrice,
                           "markPrice": p.markPriceUsd, "unrealizedPnl": p.unrealizedPnlUsd}
                          for p in portfolio.positions if p.venue == NAME])

    def open_orders(self) -> Result:
        return Result.ok([order for order in self._venue.resting.values()
                          if order["session_id"] == self._session.id])


class SimVenue:
    name = NAME

    def __init__(self) -> None:
        self.resting: dict[str, dict[str, Any]] = {}

    def agent_api(self, session: Any, gateway: Any) -> Api:
        return Api(self, session, gateway)

    def marks(self, keys: Any) -> dict[tuple[str, str], Decimal]:
        return {(network, key): MIDS[key] for network, key in keys if key in MIDS}

    def execute(self, action: Action, wallet: Any) -> Execution:
        _record({"method": action.method, "params": action.params, "session_id": action.session_id})
        if action.method == "delete_order":
            order = self.resting.pop(action.params["orderId"], None)
            if order is None:
                return Execution.failed(f"order {action.params['orderId']} is not open")
            return Execution(data=None)
        params = action.params
        coin = params["coin"]
        if coin in REFUSE:
            return Execution.failed("Order could not immediately match against any resting orders.")
        size, limit = Decimal(str(params["size"])), Decimal(str(params["price"]))
        buy = params["side"] == "buy"
        mid = MIDS.get(coin)
        if mid is None:
            return Execution.failed(f"unknown coin {coin}")
        order_id = str(next(_ids))
        crosses = (limit >= mid) if buy else (limit <= mid)
        if params.get("type") == "limit" and not crosses:
            self.resting[order_id] = {"orderId": order_id, "coin": coin, "side": params["side"], "size": float(size),
                                      "price": float(limit), "session_id": action.session_id}
            return Execution(data={"orderId": order_id, "coin": coin, "side": params["side"], "price": float(limit),
                                   "size": float(size), "filled": 0.0, "status": "open", "market": "perp"},
                             order_ids=(order_id,))
        if not crosses:
            return Execution.failed("Order could not immediately match against any resting orders.")
        signed = size if buy else -size
        fill = Fill(venue=NAME, network=NETWORK, asset_key=coin, coin=coin, size=signed, price=mid,
                    fee=(size * mid * FEE_RATE).quantize(Decimal("0.000001")), contract="perp",
                    cash_network=NETWORK, cash_asset=CASH, order_id=order_id)
        return Execution(data={"orderId": order_id, "coin": coin, "side": params["side"], "price": float(mid),
                               "size": float(size), "filled": float(size), "status": "filled", "market": "perp"},
                         fills=(fill,))


class SimCloser:
    """Closes a session's sim positions with reduce-only market orders sized from its ledger."""

    def close(self, session: Any, positions: Any, gateway: Any, log: Callable[[str], None]) -> CloseReport:
        closed, residue, suggested = [], [], []
        for p in positions:
            size = Decimal(p.size)
            mid = MIDS.get(p.coin, Decimal(0))
            action = Action(venue=NAME, kind=ORDER, method="place_order",
                            params={"coin": p.coin, "side": "sell" if size > 0 else "buy", "size": float(abs(size)),
                                    "price": float(mid * (Decimal("0.9") if size > 0 else Decimal("1.1"))),
                                    "market": "perp", "type": "market", "reduceOnly": True},
                            session_id=session.id, wallet=session.wallet, notional_usd=abs(size) * mid)
            result = gateway.submit(session, action)
            if result.success and result.data is not None and result.data.get("suggested"):
                suggested.append(result.data["suggestionId"])
            elif result.success:
                closed.append(p.assetKey)
                log(f"sim: closed {p.coin} {p.size}")
            else:
                residue.append(Residue(NAME, p.assetKey, p.coin, p.size, result.error or "refused"))
        return CloseReport(NAME, closed=tuple(closed), residue=tuple(residue), suggested=tuple(suggested))


@tickloop.hookimpl
def tickloop_register_venues(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=lambda config: SimVenue(), description="test venue"))


@tickloop.hookimpl
def tickloop_register_closers(register: Callable[[Backend], None]) -> None:
    register(Backend(name=NAME, factory=lambda config: SimCloser(), description="test closer"))
