"""The Hyperliquid venue: the object the registry's factory returns (:class:`tickloop.venues.Venue`).

It talks to the exchange through :class:`tickloop_hyperliquid.api.ExchangeApi`, and

- gives agents ``agent.platforms.hyperliquid`` (:mod:`tickloop_hyperliquid.platform`);
- executes actions (``place_order``, ``delete_order``, ``transfer``) with the wallet's key and
  reports their fills for the ledger, recovering an order whose answer was lost by its client
  order id;
- marks positions, reads balances and margin;
- books fills of resting orders that filled later (``sync_fills``), from ``userFills``;
- answers recovery and reconciliation (:mod:`tickloop_hyperliquid.safekeeping`).

Options (``[venues.hyperliquid]``): ``base_url`` (a real or paper exchange; unset: the one a
plugin supplies, the paper plugin's in-process paper exchange by default), ``paper`` (true: the
configured URL is a paper exchange, e.g. ``tickloop paper serve``; paper wallets may trade there
and are funded on first use), ``timeout_seconds`` (per request, 10), and the closer's
``close_attempts`` (5), ``close_slippage`` (0.01, doubled on every retry) and
``close_retry_delay`` (seconds).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from tickloop.actions import Action, Execution, Fill
from tickloop.intents import Found
from tickloop.wallets import HYPERLIQUID_USDC
from tickloop_hyperliquid import NAME
from tickloop_hyperliquid.api import ExchangeApi, answer_lost, describe
from tickloop_hyperliquid.orders import NETWORK, TAKER_FEE, ZERO, OrderPlan, is_cloid, order_info, perp_fill, plan_order
from tickloop_hyperliquid.platform import HyperliquidApi
from tickloop_hyperliquid.safekeeping import Safekeeping

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.gateway import Gateway
    from tickloop.sessions import Session
    from tickloop.venues import DefaultEndpoints
    from tickloop.wallets import Wallet

log = logging.getLogger("tickloop.hyperliquid")

D = Decimal
#: Waits before looking up an order whose answer was lost (its request may still be in flight).
RECOVERY_DELAYS = (0.2, 0.4, 0.8)
PAPER_RECOVERY_DELAYS = (0.05, 0.15, 0.3)


class HyperliquidVenue(Safekeeping):
    """The venue object (one per runtime process)."""

    name = NAME

    def __init__(self, config: Config, endpoints: DefaultEndpoints | None = None) -> None:
        options = dict(config.venues.get(NAME, {}) or {})
        self.config = config
        self.api = ExchangeApi(config, options, endpoints)
        self.close_attempts = int(options.get("close_attempts", 5))
        self.close_slippage = D(str(options.get("close_slippage", "0.01")))
        self._close_retry_delay = options.get("close_retry_delay")

    @property
    def paper(self) -> bool:
        return self.api.paper

    @property
    def close_retry_delay(self) -> float:
        if self._close_retry_delay is not None:
            return float(self._close_retry_delay)
        return 0.0 if self.paper else 0.5

    @property
    def recovery_delays(self) -> tuple[float, ...]:
        return PAPER_RECOVERY_DELAYS if self.paper else RECOVERY_DELAYS

    def refusal(self, wallet: Wallet | None, address: str) -> str | None:
        """Why ``wallet`` cannot trade on this venue, or None."""
        if wallet is None:
            return (f"wallet {address} has not been added, so tickloop has no key to sign Hyperliquid actions;"
                    " add it: tickloop wallets add --paper, --key-env VAR or --keystore FILE")
        if wallet.is_paper and not self.paper:
            return (f"wallet {wallet.address} is a paper wallet and cannot trade on the Hyperliquid exchange"
                    f" at {self.api.base_url} (real funds); use a wallet with a real key, or remove"
                    " [venues.hyperliquid] base_url to trade on the paper exchange (or set paper = true"
                    " if that URL is a paper exchange)")
        return None

    def agent_api(self, session: Session, gateway: Gateway) -> HyperliquidApi:
        return HyperliquidApi(self, session, gateway)

    # -- optional venue methods the runtime calls ----------------------------------------------

    def marks(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
        wanted = [(network, coin) for network, coin in keys if network == NETWORK]
        if not wanted:
            return {}
        mids = self.api.mids()
        return {(network, coin): mids[coin] for network, coin in wanted if coin in mids}

    def balance(self, wallet: Wallet | str, network: str, asset: str) -> int | None:
        """The account value in raw USDC units (6 decimals) for Hyperliquid's USDC; None for
        any other asset."""
        if (network, asset.lower()) != HYPERLIQUID_USDC:
            return None
        address = wallet if isinstance(wallet, str) else wallet.address
        value = D(str(self.api.user_state(address)["marginSummary"]["accountValue"]))
        return int(value.scaleb(6).to_integral_value(ROUND_DOWN))

    def account(self, wallet: str) -> dict[str, str] | None:
        try:
            summary = self.api.user_state(wallet)["marginSummary"]
        except Exception as exc:
            log.warning("cannot read the Hyperliquid account of %s: %s", wallet, describe(exc))
            return None
        return {"accountValue": str(summary["accountValue"]), "totalMarginUsed": str(summary["totalMarginUsed"])}

    def close(self) -> None:
        self.api.close()

    # -- execution -----------------------------------------------------------------------------

    def execute(self, action: Action, wallet: Wallet | None, client_id: str | None = None) -> Execution:
        """Execute ``action``; an order is sent under ``client_id`` as its ``cloid`` (a fresh one
        when it is not a cloid: ``0x`` + 32 hex digits)."""
        try:
            refused = self.refusal(wallet, action.wallet)
            if refused:
                return Execution.failed(refused)
            assert wallet is not None
            self.api.ensure_paper_account(wallet)
            if action.method == "place_order":
                return self._place(wallet, action.params, client_id)
            if action.method == "delete_order":
                return self._cancel(wallet, action.params)
            if action.method == "transfer":
                return self._transfer(wallet, action.params)
            return Execution.failed(f"hyperliquid cannot execute {action.method!r}")
        except Exception as exc:
            log.info("hyperliquid %s failed: %s", action.method, describe(exc))
            return Execution.failed(f"hyperliquid {action.method} failed: {describe(exc)}")

    def _place(self, wallet: Wallet, params: Mapping[str, Any], client_id: str | None) -> Execution:
        try:
            plan = plan_order(params, self.api.spec(str(params.get("coin"))))
        except ValueError as exc:
            return Execution.failed(str(exc))
        # The client order id recorded in the intent: a lost answer (timeout, 5xx) or a crash is
        # looked up by it instead of guessed.
        cloid = client_id if client_id is not None and is_cloid(client_id) else "0x" + secrets.token_hex(16)
        try:
            status = self.api.place(wallet, plan, cloid)
        except Exception as exc:
            recovered = self._recover(wallet.address, plan, cloid, exc) if answer_lost(exc) else None
            if recovered is None:
                raise
            return recovered
        if isinstance(status, dict) and "error" in status:
            return Execution.failed(str(status["error"]))
        if isinstance(status, dict) and "resting" in status:
            oid = str(status["resting"]["oid"])
            return Execution(data=order_info(plan, oid, price=plan.price, filled=ZERO, status="open"),
                             order_ids=(oid,))
        if isinstance(status, dict) and "filled" in status:
            filled = status["filled"]
            oid, total, average = str(filled["oid"]), D(str(filled["totalSz"])), D(str(filled["avgPx"]))
            fee = self._fee(wallet.address, oid, total, average)
            state = "filled" if total == plan.size else "partially_filled"
            return Execution(data=order_info(plan, oid, price=average, filled=total, status=state),
                             fills=(plan.fill(oid, total, average, fee),))
        return Execution.failed(f"unexpected order status from Hyperliquid: {status!r}")

    def _recover(self, address: str, plan: OrderPlan, cloid: str, error: Exception) -> Execution | None:
        """After an order's answer was lost: what the exchange did with it, by its client order
        id (None: the exchange does not know it, so it was not placed)."""
        for delay in self.recovery_delays:
            time.sleep(delay)
            try:
                found = self._lookup_order(address, plan, cloid)
            except Exception:
                continue
            if found.found is Found.NOT_FOUND:
                continue
            log.warning("the answer to order %s was lost (%s); the exchange has it %s", cloid, describe(error),
                        found.found)
            if found.found is Found.CANCELLED and not found.execution.fills:
                return Execution.failed(f"{found.execution.error} (its answer was lost: {describe(error)})")
            return found.execution
        return None

    def _fee(self, address: str, oid: str, size: Decimal, price: Decimal) -> Decimal:
        """The fee the exchange charged for an order's fills (its ``userFills``); the base taker
        fee when they cannot be read."""
        try:
            fees = [D(str(f.get("fee", "0"))) for f in self.api.user_fills(address) if str(f.get("oid")) == oid]
        except Exception as exc:
            log.warning("cannot read the fills of order %s: %s; assuming the base taker fee", oid, describe(exc))
            fees = []
        return sum(fees, ZERO) if fees else (size * price * TAKER_FEE).quantize(D("0.000001"))

    def _cancel(self, wallet: Wallet, params: Mapping[str, Any]) -> Execution:
        coin, order_id = params.get("coin"), str(params.get("orderId"))
        if not isinstance(coin, str) or self.api.spec(coin) is None:
            return Execution.failed(f"unknown coin {coin!r} on {NETWORK}")
        if not order_id.isdigit():
            return Execution.failed(f"orderId {order_id!r} is not a Hyperliquid order id")
        status = self.api.cancel(wallet, coin, int(order_id))
        if status == "success":
            return Execution(data=None)
        return Execution.failed(str(status.get("error") if isinstance(status, dict) else status))

    def _transfer(self, wallet: Wallet, params: Mapping[str, Any]) -> Execution:
        try:
            amount = float(params["amount"])
        except (KeyError, TypeError, ValueError):
            return Execution.failed(f"transfer: amount must be a number, got {params.get('amount')!r}")
        self.api.transfer(wallet, amount, bool(params.get("toPerp")))
        return Execution(data=None)

    # -- ledger upkeep -------------------------------------------------------------------------

    def sync_fills(self, sessions: Sequence[Session], gateway: Gateway) -> int:
        """Book fills of the sessions' resting orders that the ledger does not have yet (an
        order that rested, then filled as the market moved). All sessions must share one
        wallet. Returns the number of fills booked."""
        if not sessions:
            return 0
        # Read what is booked and book what is missing under the wallet's lock: two processes
        # syncing at once would otherwise both book the same late fill.
        with self.api.signing(sessions[0].wallet):
            return self._sync_fills(sessions, gateway)

    def _sync_fills(self, sessions: Sequence[Session], gateway: Gateway) -> int:
        owners = {order_id: session for session in sessions for order_id in gateway.placed_orders(session.id, NAME)}
        if not owners:
            return 0
        venue_side: dict[str, list[dict[str, Any]]] = {}
        for record in self.api.user_fills(sessions[0].wallet):
            oid = str(record.get("oid"))
            if oid in owners:
                venue_side.setdefault(oid, []).append(record)
        if not venue_side:
            return 0
        booked = gateway.booked_orders([s.id for s in sessions], NAME)
        late = [(owners[oid], fill) for oid, fills in venue_side.items()
                if (fill := _late_fill(oid, fills, booked.get(oid, ZERO))) is not None]
        return gateway.record_fills(late)

    @staticmethod
    def owned_order_ids(session: Session, gateway: Gateway) -> set[str]:
        """Orders this session placed: the ones it left resting and the ones that filled."""
        return gateway.placed_orders(session.id, NAME) | set(gateway.booked_orders([session.id], NAME))


def _late_fill(oid: str, fills: list[dict[str, Any]], booked: Decimal) -> Fill | None:
    """What the exchange filled of order ``oid`` (its ``userFills``) beyond the ``booked`` size,
    at the fills' average price with their fee pro rata; None when nothing is missing."""
    sizes = [D(str(f["sz"])) * (1 if f.get("side") == "B" else -1) for f in fills]
    total = sum(sizes, ZERO)
    missing = total - booked
    if missing == 0 or (missing > 0) != (total > 0):
        return None
    notional = sum((abs(s) * D(str(f["px"])) for s, f in zip(sizes, fills)), ZERO)
    fees = sum((D(str(f.get("fee", "0"))) for f in fills), ZERO)
    share = abs(missing) / abs(total)
    return perp_fill(fills[0]["coin"], missing, (notional / abs(total)).quantize(D("0.00000001")),
                     fee=(fees * share).quantize(D("0.000001")), order_id=oid)


__all__ = ["HyperliquidVenue"]
