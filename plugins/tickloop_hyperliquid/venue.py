"""The Hyperliquid venue: Circuit's ``agent.platforms.hyperliquid`` on the official SDK.

Every exchange call goes through ``hyperliquid-python-sdk`` (``Info`` and ``Exchange``) against
the configured base URL, or, when none is configured, against the paper exchange tickloop runs
in-process for the home (:func:`tickloop_paper.local_exchanges`). The venue

- answers the agent's reads (positions, open orders, balances, fills, orders, mids) with
  Circuit's response shapes, scoped to the session: several sessions may share one account, so
  positions come from the session's ledger and orders are those the session placed;
- turns the agent's mutating calls (``place_order``, ``delete_order``, ``transfer``) into
  :class:`tickloop.actions.Action` objects for ``gateway.submit`` (auto: executed now; manual:
  a suggestion executed on approval);
- executes actions with the wallet's key and reports fills for the ledger;
- books fills of resting orders that filled later (``sync_fills``), from ``userFills``.

Options (``[venues.hyperliquid]``): ``base_url`` (a real or paper exchange; unset: the
in-process paper exchange), ``paper`` (true: the configured URL is a paper exchange, e.g.
``tickloop paper serve``; paper wallets may trade there and are funded on first use),
``timeout`` (seconds per request, 10), and the closer's ``close_attempts`` (5),
``close_slippage`` (0.01, doubled on every retry) and ``close_retry_delay`` (seconds).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import attrs

from tickloop.actions import CANCEL, ORDER, TRANSFER, Action, Execution, Fill
from tickloop.errors import TickloopError
from tickloop.intents import Found
from tickloop.results import Data, Result
from tickloop.venues import DefaultEndpoints
from tickloop.wallets import HYPERLIQUID_USDC

from tickloop_hyperliquid.safekeeping import Safekeeping

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.sessions import Session
    from tickloop.venues import Gateway
    from tickloop.wallets import Wallet

log = logging.getLogger("tickloop.hyperliquid")

NAME = "hyperliquid"
NETWORK = "hypercore:perp"
D = Decimal
ZERO = D(0)
#: The taker fee assumed when the exchange's fill record cannot be read (Hyperliquid's base tier).
TAKER_FEE = D("0.00045")
ORDER_TYPES = ("market", "limit", "stop", "take_profit")
#: Waits before looking up an order whose answer was lost (its request may still be in flight).
RECOVERY_DELAYS = (0.2, 0.4, 0.8)
DEFAULT_LEVERAGE = 20
PAPER_RECOVERY_DELAYS = (0.05, 0.15, 0.3)


class VenueError(Exception):
    """The exchange refused a request or could not be reached (the message says which)."""


def describe(exc: BaseException) -> str:
    """A one-line reason for an SDK or network failure."""
    from hyperliquid.utils.error import ClientError, ServerError

    if isinstance(exc, ServerError):
        return f"Hyperliquid server error {exc.status_code}: {str(exc.message)[:200]}"
    if isinstance(exc, ClientError):
        return f"Hyperliquid refused the request (HTTP {exc.status_code}): {str(exc.error_message)[:200]}"
    if isinstance(exc, (VenueError, TickloopError)):
        return str(exc)
    try:
        import requests

        if isinstance(exc, requests.RequestException):
            return f"cannot reach Hyperliquid: {type(exc).__name__}: {exc}"
    except ImportError:  # pragma: no cover - requests is the SDK's dependency
        pass
    return f"{type(exc).__name__}: {exc}"


def is_cloid(value: Any) -> bool:
    """Whether ``value`` is a Hyperliquid client order id: ``0x`` and 32 hex digits."""
    if not isinstance(value, str) or len(value) != 34 or not value.startswith("0x"):
        return False
    try:
        int(value[2:], 16)
    except ValueError:
        return False
    return True


def _answer_lost(exc: BaseException) -> bool:
    """Whether the exchange may have acted on a request whose answer did not arrive (a 5xx,
    a timeout or a dropped connection), as opposed to a refusal or a local error."""
    import requests
    from hyperliquid.utils.error import ServerError

    return isinstance(exc, (ServerError, requests.RequestException))


def num(value: Any) -> str:
    """A number as the Circuit SDK's string fields hold it ("0.5", "60000")."""
    text = format(D(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def round_size(size: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return size.quantize(D(1).scaleb(-sz_decimals), rounding)


def round_price(price: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """A valid perp price: at most 5 significant figures and ``6 - szDecimals`` decimals
    (integers are always valid), rounded in ``rounding``'s direction."""
    if price <= 0:
        return price
    if price == price.to_integral_value():
        return price.quantize(D(1))
    places = min(6 - sz_decimals, max(0, 4 - price.adjusted()))
    rounded = price.quantize(D(1).scaleb(-places), rounding)
    if rounded.adjusted() > price.adjusted() and places > 0:  # 99999.5 -> 100000: one figure more
        rounded = price.quantize(D(1).scaleb(-(places - 1)), rounding)
    return rounded


@attrs.frozen
class OrderPlan:
    """A Circuit order request checked and turned into the SDK's arguments."""

    coin: str
    is_buy: bool
    size: Decimal
    price: Decimal
    order_type: dict[str, Any]
    reduce_only: bool
    kind: str

    @property
    def side(self) -> str:
        return "buy" if self.is_buy else "sell"


def plan_order(request: Mapping[str, Any], spec: Mapping[str, Any] | None) -> OrderPlan:
    """Check a ``place_order`` request (Circuit's shape) against the coin's rules; raises
    ValueError with the reason. Market orders become IOC limit orders at ``price`` (the
    slippage bound, rounded outward to the tick); sizes are rounded to the lot (down for
    reduce-only orders, which must never exceed the position)."""
    coin = request.get("coin")
    if not isinstance(coin, str) or not coin:
        raise ValueError("coin is required (e.g. \"BTC\")")
    market = request.get("market", "perp")
    if market == "spot" or "/" in coin:
        raise ValueError("spot orders are not supported by tickloop's hyperliquid venue yet (perp only)")
    if market not in ("perp", None):
        raise ValueError(f"market must be \"perp\" or \"spot\", got {market!r}")
    if spec is None:
        raise ValueError(f"unknown coin {coin!r} on {NETWORK}")
    side = request.get("side")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be \"buy\" or \"sell\", got {side!r}")
    kind = request.get("type") or "market"
    if kind not in ORDER_TYPES:
        raise ValueError(f"type must be one of {', '.join(ORDER_TYPES)}, got {kind!r}")
    try:
        size, price = D(str(request.get("size"))), D(str(request.get("price")))
    except InvalidOperation:
        raise ValueError(f"size and price must be numbers, got {request.get('size')!r} and {request.get('price')!r}") \
            from None
    if not size.is_finite() or size <= 0 or not price.is_finite() or price <= 0:
        raise ValueError("size and price must be positive numbers (for market orders, price is the worst price"
                         " accepted)")
    is_buy = side == "buy"
    reduce_only = bool(request.get("reduceOnly", False))
    sz_decimals = int(spec["szDecimals"])
    rounded = round_size(size, sz_decimals, ROUND_DOWN if reduce_only else ROUND_HALF_EVEN)
    if rounded <= 0:
        raise ValueError(f"size {size} rounds to 0 at {coin}'s lot size ({sz_decimals} decimals)")
    outward = ROUND_UP if is_buy else ROUND_DOWN
    if kind == "market":
        order_type: dict[str, Any] = {"limit": {"tif": "Ioc"}}
        limit = round_price(price, sz_decimals, outward)
    elif kind == "limit":
        order_type = {"limit": {"tif": "Alo" if request.get("postOnly") else "Gtc"}}
        limit = round_price(price, sz_decimals)
    else:
        try:
            trigger = D(str(request.get("triggerPrice")))
        except InvalidOperation:
            trigger = ZERO
        if not trigger.is_finite() or trigger <= 0:
            raise ValueError(f"a {kind} order needs a positive triggerPrice")
        order_type = {"trigger": {"triggerPx": float(round_price(trigger, sz_decimals)), "isMarket": True,
                                  "tpsl": "sl" if kind == "stop" else "tp"}}
        limit = round_price(price, sz_decimals, outward)
    return OrderPlan(coin, is_buy, rounded, limit, order_type, reduce_only, kind)


def order_info(plan: OrderPlan, order_id: str, *, price: Decimal, filled: Decimal, status: str) -> dict[str, Any]:
    """Circuit's ``HyperliquidOrderInfo``."""
    return {"orderId": order_id, "coin": plan.coin, "side": plan.side, "price": float(price),
            "size": float(plan.size), "filled": float(filled), "status": status, "market": "perp"}


def parse_expiry(value: Any) -> datetime | None:
    """``expiresAt`` (ISO 8601) as a datetime; ValueError names a bad one."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"expiresAt {value!r} is not an ISO 8601 time") from None


class Aliased(Data):
    """A result row that also answers the Circuit SDK's snake_case attribute names."""

    __slots__ = ()
    ALIASES = {"price_usd": "priceUsd", "is_stale": "isStale"}

    def __getattr__(self, name: str) -> Any:
        if name in self.ALIASES:
            return self[self.ALIASES[name]]
        raise AttributeError(name)


class HyperliquidVenue(Safekeeping):
    """The venue object (one per runtime process)."""

    name = NAME

    def __init__(self, config: Config, endpoints: DefaultEndpoints | None = None) -> None:
        options = dict(config.venues.get(NAME, {}) or {})
        self.config = config
        self._endpoints = endpoints or DefaultEndpoints(None, config, NAME)
        base_url = options.get("base_url")
        # The SDK signs for mainnet only when the URL equals its constant exactly.
        self._url = str(base_url).rstrip("/") if base_url else None
        #: a configured URL is a real exchange unless marked ``paper = true``; a default one is
        #: what the plugin that supplies it says (known once it is asked)
        self._paper: bool | None = bool(options.get("paper", False)) if base_url else None
        self.timeout = float(options.get("timeout_seconds", 10))
        self.close_attempts = int(options.get("close_attempts", 5))
        self.close_slippage = D(str(options.get("close_slippage", "0.01")))
        self._close_retry_delay = options.get("close_retry_delay")
        self._lock = threading.RLock()
        self._meta: dict[str, Any] | None = None
        self._spot_meta: dict[str, Any] | None = None
        self._info: Any = None
        self._exchanges: dict[str, Any] = {}
        self._funded: set[str] = set()
        self._signers: dict[str, threading.Lock] = {}

    # -- connection ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._where()[0]

    @property
    def paper(self) -> bool:
        """Whether the exchange is a paper exchange (paper wallets trade only there)."""
        return self._where()[1]

    def _where(self) -> tuple[str, bool]:
        """The exchange's URL and whether it is paper: as configured, else as the plugin that
        supplies the default says (asked on first use)."""
        if self._url is None or self._paper is None:
            found = self._endpoints.get("base_url")
            self._url, self._paper = found.urls["base_url"].rstrip("/"), found.paper
        return self._url, self._paper

    @property
    def close_retry_delay(self) -> float:
        return float(self._close_retry_delay if self._close_retry_delay is not None else 0 if self.paper else 0.5)

    @property
    def recovery_delays(self) -> tuple[float, ...]:
        return PAPER_RECOVERY_DELAYS if self.paper else RECOVERY_DELAYS

    def _load_meta(self) -> None:
        with self._lock:
            if self._meta is not None:
                return
            from hyperliquid.api import API

            api = API(self.base_url, self.timeout)
            meta = api.post("/info", {"type": "meta", "dex": ""})
            spot_meta = api.post("/info", {"type": "spotMeta"})
            if not isinstance(meta, dict) or not isinstance(meta.get("universe"), list):
                raise VenueError(f"Hyperliquid at {self.base_url} answered meta with {str(meta)[:200]}")
            self._meta, self._spot_meta = meta, spot_meta

    @property
    def info(self) -> Any:
        with self._lock:
            if self._info is None:
                from hyperliquid.info import Info

                self._load_meta()
                self._info = Info(self.base_url, True, self._meta, self._spot_meta, timeout=self.timeout)
            return self._info

    def spec(self, coin: str) -> dict[str, Any] | None:
        """The coin's entry in ``meta`` (``szDecimals``, ``maxLeverage``), or None."""
        self._load_meta()
        assert self._meta is not None
        return next((s for s in self._meta["universe"] if s.get("name") == coin), None)

    def exchange(self, wallet: Wallet) -> Any:
        """The SDK's ``Exchange`` signing with ``wallet``'s key (one per wallet)."""
        with self._lock:
            found = self._exchanges.get(wallet.address.lower())
            if found is None:
                from hyperliquid.exchange import Exchange

                self._load_meta()
                found = Exchange(wallet.account(self.config.home), self.base_url, meta=self._meta,
                                 spot_meta=self._spot_meta, timeout=self.timeout)
                self._exchanges[wallet.address.lower()] = found
            return found

    @contextlib.contextmanager
    def signing(self, address: str) -> Iterator[None]:
        """Serialise one signer's actions, each in a later millisecond than the last: the SDK
        takes the nonce from the clock and Hyperliquid refuses a nonce used twice. Sessions on
        one wallet may run in several processes of the home (worker processes, a CLI approving
        a suggestion), so the last nonce is kept in a locked file in the home."""
        import fcntl

        with self._lock:
            lock = self._signers.setdefault(address.lower(), threading.Lock())
        folder = Path(self.config.home) / "hyperliquid" / "signers"
        folder.mkdir(parents=True, exist_ok=True)
        with lock, open(folder / address.lower(), "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0)
                text = f.read().strip()
                last = int(text) if text.isdigit() else 0
                # (A clock set back by more than a few seconds is not waited out.)
                while last - 5000 < int(time.time() * 1000) <= last:
                    time.sleep(0.0005)
                try:
                    yield
                finally:
                    f.seek(0)
                    f.truncate()
                    f.write(str(int(time.time() * 1000)))
                    f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def refusal(self, wallet: Wallet | None, address: str) -> str | None:
        """Why ``wallet`` cannot trade on this venue, or None."""
        if wallet is None:
            return (f"wallet {address} has not been added, so tickloop has no key to sign Hyperliquid actions;"
                    " add it: tickloop wallets add --paper, --key-env VAR or --keystore FILE")
        if wallet.is_paper and not self.paper:
            return (f"wallet {wallet.address} is a paper wallet and cannot trade on the Hyperliquid exchange"
                    f" at {self.base_url} (real funds); use a wallet with a real key, or remove"
                    " [venues.hyperliquid] base_url to trade on the paper exchange (or set paper = true"
                    " if that URL is a paper exchange)")
        return None

    def ensure_paper_account(self, wallet: Wallet) -> None:
        """Fund a paper wallet's account on the paper exchange the first time it is used."""
        if not (self.paper and wallet.is_paper) or wallet.address.lower() in self._funded:
            return
        from hyperliquid.api import API

        amount = D(str(self.config.wallets.paper_funding)).scaleb(-6)
        answer = API(self.base_url, self.timeout).post(
            "/paper/fund", {"user": wallet.address, "usdc": str(amount), "ifNew": True})
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            raise VenueError(f"the paper exchange did not fund {wallet.address}: {answer}")
        self._funded.add(wallet.address.lower())

    # -- reads ---------------------------------------------------------------------------------

    def mids(self) -> dict[str, Decimal]:
        return {coin: D(str(px)) for coin, px in self.info.all_mids().items()}

    def user_state(self, address: str) -> dict[str, Any]:
        state = self.info.user_state(address)
        if not isinstance(state, dict) or "marginSummary" not in state:
            raise VenueError(f"Hyperliquid answered clearinghouseState with {str(state)[:200]}")
        return state

    def account_size(self, address: str, coin: str) -> Decimal:
        """The account's net position in ``coin`` (signed)."""
        for item in self.user_state(address).get("assetPositions", []):
            position = item.get("position", {})
            if position.get("coin") == coin:
                return D(str(position.get("szi", "0")))
        return ZERO

    def open_orders(self, address: str) -> list[dict[str, Any]]:
        found = self.info.frontend_open_orders(address)
        if not isinstance(found, list):
            raise VenueError(f"Hyperliquid answered frontendOpenOrders with {str(found)[:200]}")
        return found

    def user_fills(self, address: str) -> list[dict[str, Any]]:
        found = self.info.user_fills(address)
        if not isinstance(found, list):
            raise VenueError(f"Hyperliquid answered userFills with {str(found)[:200]}")
        return found

    # -- optional venue methods the runtime calls ----------------------------------------------

    def marks(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
        wanted = [(network, coin) for network, coin in keys if network == NETWORK]
        if not wanted:
            return {}
        mids = self.mids()
        return {(network, coin): mids[coin] for network, coin in wanted if coin in mids}

    def balance(self, wallet: Wallet | str, network: str, asset: str) -> int | None:
        """The account value in raw USDC units (6 decimals) for Hyperliquid's USDC; None for
        any other asset."""
        if (network, asset.lower()) != HYPERLIQUID_USDC:
            return None
        address = getattr(wallet, "address", wallet)
        value = D(str(self.user_state(address)["marginSummary"]["accountValue"]))
        return int(value.scaleb(6).to_integral_value(ROUND_DOWN))

    def account(self, wallet: str) -> dict[str, str] | None:
        try:
            summary = self.user_state(wallet)["marginSummary"]
        except Exception as exc:
            log.warning("cannot read the Hyperliquid account of %s: %s", wallet, describe(exc))
            return None
        return {"accountValue": str(summary["accountValue"]), "totalMarginUsed": str(summary["totalMarginUsed"])}

    def close(self) -> None:
        with self._lock:
            for exchange in self._exchanges.values():
                with contextlib.suppress(Exception):
                    exchange.session.close()
            self._exchanges.clear()

    # -- the agent's API -----------------------------------------------------------------------

    def agent_api(self, session: Session, gateway: Gateway) -> HyperliquidApi:
        return HyperliquidApi(self, session, gateway)

    # -- execution -----------------------------------------------------------------------------

    def execute(self, action: Action, wallet: Wallet | None, client_id: str | None = None) -> Execution:
        """Execute ``action``; an order is sent under ``client_id`` as its ``cloid`` (a fresh one
        when it is not a cloid: ``0x`` + 32 hex digits)."""
        try:
            refused = self.refusal(wallet, action.wallet)
            if refused:
                return Execution.failed(refused)
            assert wallet is not None
            self.ensure_paper_account(wallet)
            exchange = self.exchange(wallet)
            if action.method == "place_order":
                return self._place(exchange, wallet, action.params, client_id)
            if action.method == "delete_order":
                return self._cancel(exchange, wallet, action.params)
            if action.method == "transfer":
                return self._transfer(exchange, wallet, action.params)
            return Execution.failed(f"hyperliquid cannot execute {action.method!r}")
        except Exception as exc:
            log.info("hyperliquid %s failed: %s", action.method, describe(exc))
            return Execution.failed(f"hyperliquid {action.method} failed: {describe(exc)}")

    @staticmethod
    def _statuses(answer: Any) -> list[Any]:
        if isinstance(answer, dict) and answer.get("status") == "ok":
            response = answer.get("response")
            if isinstance(response, dict):
                statuses = (response.get("data") or {}).get("statuses")
                if isinstance(statuses, list) and statuses:
                    return statuses
        if isinstance(answer, dict) and answer.get("status") == "err":
            raise VenueError(str(answer.get("response")))
        raise VenueError(f"unexpected answer from Hyperliquid: {str(answer)[:200]}")

    def _place(self, exchange: Any, wallet: Wallet, params: Mapping[str, Any], client_id: str | None) -> Execution:
        from hyperliquid.utils.types import Cloid

        try:
            plan = plan_order(params, self.spec(str(params.get("coin"))))
        except ValueError as exc:
            return Execution.failed(str(exc))
        # The client order id recorded in the intent: a lost answer (timeout, 5xx) or a crash is
        # looked up by it instead of guessed.
        cloid = Cloid.from_str(client_id if is_cloid(client_id) else "0x" + secrets.token_hex(16))
        try:
            with self.signing(wallet.address):
                answer = exchange.order(plan.coin, plan.is_buy, float(plan.size), float(plan.price), plan.order_type,
                                        reduce_only=plan.reduce_only, cloid=cloid)
        except Exception as exc:
            recovered = self._recover(wallet.address, plan, cloid, exc) if _answer_lost(exc) else None
            if recovered is None:
                raise
            return recovered
        status = self._statuses(answer)[0]
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
                             fills=(self._fill(plan, oid, total, average, fee),))
        return Execution.failed(f"unexpected order status from Hyperliquid: {status!r}")

    @staticmethod
    def _fill(plan: OrderPlan, oid: str, size: Decimal, price: Decimal, fee: Decimal) -> Fill:
        return Fill(venue=NAME, network=NETWORK, asset_key=plan.coin, coin=plan.coin,
                    size=size if plan.is_buy else -size, price=price, fee=fee, contract="perp",
                    cash_network=HYPERLIQUID_USDC[0], cash_asset=HYPERLIQUID_USDC[1], cash_symbol="USDC",
                    cash_decimals=6, order_id=oid)

    def _recover(self, address: str, plan: OrderPlan, cloid: Any, error: Exception) -> Execution | None:
        """After an order's answer was lost: what the exchange did with it, by its client order
        id (None: the exchange does not know it, so it was not placed)."""
        for delay in self.recovery_delays:
            time.sleep(delay)
            try:
                found = self._lookup_order(address, plan, cloid.to_raw())
            except Exception:
                continue
            if found.found is Found.NOT_FOUND:
                continue
            log.warning("the answer to order %s was lost (%s); the exchange has it %s", cloid.to_raw(),
                        describe(error), found.found)
            if found.found is Found.CANCELLED and not found.execution.fills:
                return Execution.failed(f"{found.execution.error} (its answer was lost: {describe(error)})")
            return found.execution
        return None

    def _fee(self, address: str, oid: str, size: Decimal, price: Decimal) -> Decimal:
        """The fee the exchange charged for an order's fills (its ``userFills``); the base taker
        fee when they cannot be read."""
        try:
            fees = [D(str(f.get("fee", "0"))) for f in self.user_fills(address) if str(f.get("oid")) == oid]
        except Exception as exc:
            log.warning("cannot read the fills of order %s: %s; assuming the base taker fee", oid, describe(exc))
            fees = []
        return sum(fees, ZERO) if fees else (size * price * TAKER_FEE).quantize(D("0.000001"))

    def _cancel(self, exchange: Any, wallet: Wallet, params: Mapping[str, Any]) -> Execution:
        coin, order_id = params.get("coin"), str(params.get("orderId"))
        if not isinstance(coin, str) or self.spec(coin) is None:
            return Execution.failed(f"unknown coin {coin!r} on {NETWORK}")
        if not order_id.isdigit():
            return Execution.failed(f"orderId {order_id!r} is not a Hyperliquid order id")
        with self.signing(wallet.address):
            answer = exchange.cancel(coin, int(order_id))
        status = self._statuses(answer)[0]
        if status == "success":
            return Execution(data=None)
        return Execution.failed(str(status.get("error") if isinstance(status, dict) else status))

    def _transfer(self, exchange: Any, wallet: Wallet, params: Mapping[str, Any]) -> Execution:
        try:
            amount = float(params["amount"])
        except (KeyError, TypeError, ValueError):
            return Execution.failed(f"transfer: amount must be a number, got {params.get('amount')!r}")
        with self.signing(wallet.address):
            answer = exchange.usd_class_transfer(amount, bool(params.get("toPerp")))
        if isinstance(answer, dict) and answer.get("status") == "ok":
            return Execution(data=None)
        raise VenueError(str(answer.get("response") if isinstance(answer, dict) else answer))

    # -- ledger upkeep -------------------------------------------------------------------------

    def sync_fills(self, sessions: Sequence[Session], gateway: Gateway) -> int:
        """Book fills of the sessions' resting orders that the ledger does not have yet (an
        order that rested, then filled as the market moved). All sessions must share one
        wallet. Returns the number of fills booked."""
        if not sessions:
            return 0
        # Read what is booked and book what is missing under the wallet's lock: two processes
        # syncing at once would otherwise both book the same late fill.
        with self.signing(sessions[0].wallet):
            return self._sync_fills(sessions, gateway)

    def _sync_fills(self, sessions: Sequence[Session], gateway: Gateway) -> int:
        owners = {order_id: session for session in sessions for order_id in gateway.placed_orders(session.id, NAME)}
        if not owners:
            return 0
        venue_side: dict[str, list[dict[str, Any]]] = {}
        for fill in self.user_fills(sessions[0].wallet):
            oid = str(fill.get("oid"))
            if oid in owners:
                venue_side.setdefault(oid, []).append(fill)
        if not venue_side:
            return 0
        booked = gateway.booked_orders([s.id for s in sessions], NAME)
        late = []
        for oid, fills in venue_side.items():
            sizes = [D(str(f["sz"])) * (1 if f.get("side") == "B" else -1) for f in fills]
            total = sum(sizes, ZERO)
            missing = total - booked.get(oid, ZERO)
            if missing == 0 or (missing > 0) != (total > 0):
                continue
            notional = sum((abs(s) * D(str(f["px"])) for s, f in zip(sizes, fills)), ZERO)
            fees = sum((D(str(f.get("fee", "0"))) for f in fills), ZERO)
            share = abs(missing) / abs(total)
            coin = fills[0]["coin"]
            fill = Fill(venue=NAME, network=NETWORK, asset_key=coin, coin=coin, size=missing,
                        price=(notional / abs(total)).quantize(D("0.00000001")),
                        fee=(fees * share).quantize(D("0.000001")), contract="perp",
                        cash_network=HYPERLIQUID_USDC[0], cash_asset=HYPERLIQUID_USDC[1], cash_symbol="USDC",
                        cash_decimals=6, order_id=oid)
            late.append((owners[oid], fill))
        return gateway.record_fills(late)

    @staticmethod
    def owned_order_ids(session: Session, gateway: Gateway) -> set[str]:
        """Orders this session placed: the ones it left resting and the ones that filled."""
        return gateway.placed_orders(session.id, NAME) | set(gateway.booked_orders([session.id], NAME))


def _guarded(method: Any) -> Any:
    """Agent-facing methods answer a failed Result instead of raising."""

    def call(self: HyperliquidApi, *args: Any, **kwargs: Any) -> Result:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            log.info("hyperliquid.%s failed: %s", method.__name__, describe(exc))
            return Result.fail(f"hyperliquid.{method.__name__} failed: {describe(exc)}")

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class HyperliquidApi:
    """``agent.platforms.hyperliquid`` for one run of one session (Circuit's method names and
    result shapes; see the Circuit SDK's ``HyperliquidApi``)."""

    def __init__(self, venue: HyperliquidVenue, session: Session, gateway: Gateway) -> None:
        self._venue = venue
        self._session = session
        self._gateway = gateway
        self._synced = False

    def _default_leverage(self, coin: str) -> Decimal:
        """Hyperliquid's default: 20x cross, or the coin's maximum when lower."""
        spec = self._venue.spec(coin) or {}
        return D(min(DEFAULT_LEVERAGE, int(spec.get("maxLeverage", DEFAULT_LEVERAGE))))

    def _leverages(self) -> dict[str, Decimal]:
        """The account's leverage per coin it holds (best effort)."""
        try:
            state = self._venue.user_state(self._session.wallet)
        except Exception:
            return {}
        out = {}
        for item in state.get("assetPositions", []):
            position = item.get("position", {})
            value = (position.get("leverage") or {}).get("value")
            if value:
                out[position.get("coin")] = D(str(value))
        return out

    def _sync(self) -> None:
        if not self._synced:
            self._venue.sync_fills([self._session], self._gateway)
            self._synced = True

    def _refusal(self) -> str | None:
        wallet = self._gateway.wallet(self._session.wallet)
        if wallet is not None:
            return self._venue.refusal(wallet, self._session.wallet)
        return None  # not added: the action fails at execution with the reason

    def _submit(self, kind: str, method: str, params: dict[str, Any], notional: Decimal | None,
                expires_at: datetime | None = None, message: str | None = None) -> Result:
        action = Action(venue=NAME, kind=kind, method=method, params=params, session_id=self._session.id,
                        wallet=self._session.wallet, notional_usd=notional, expires_at=expires_at,
                        message=message)
        self._synced = False  # what the session holds may change
        return self._gateway.submit(self._session, action)

    # -- mutating ------------------------------------------------------------------------------

    @_guarded
    def place_order(self, request: Mapping[str, Any]) -> Result:
        """Place a perp order: ``{coin, side, size, price, market, type, triggerPrice,
        reduceOnly, postOnly, message, expiresAt}``; auto mode answers ``HyperliquidOrderInfo``,
        manual mode a suggestion."""
        if hasattr(request, "model_dump"):
            request = request.model_dump(by_alias=True, exclude_unset=True)
        params = {k: v for k, v in dict(request).items() if v is not None}
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        try:
            plan = plan_order(params, self._venue.spec(str(params.get("coin"))))
            expires_at = parse_expiry(params.get("expiresAt"))
        except ValueError as exc:
            return Result.fail(f"place_order: {exc}")
        message = params.get("message")
        if message is not None and len(str(message)) > 250:
            return Result.fail("place_order: message must be at most 250 characters")
        return self._submit(ORDER, "place_order", params, plan.size * plan.price, expires_at,
                            str(message) if message is not None else None)

    @_guarded
    def delete_order(self, order_id: str, coin: str) -> Result:
        """Cancel an open order this session placed."""
        order_id = str(order_id)
        if order_id not in self._gateway.placed_orders(self._session.id, NAME):
            return Result.fail(f"delete_order: order {order_id} was not placed by session {self._session.id}")
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        return self._submit(CANCEL, "delete_order", {"orderId": order_id, "coin": coin}, None)

    @_guarded
    def transfer(self, request: Mapping[str, Any]) -> Result:
        """Move USDC between the account's spot and perp balances: ``{amount, toPerp}``."""
        if hasattr(request, "model_dump"):
            request = request.model_dump(by_alias=True, exclude_unset=True)
        params = {k: v for k, v in dict(request).items() if v is not None}
        try:
            amount = D(str(params.get("amount")))
            expires_at = parse_expiry(params.get("expiresAt"))
        except (InvalidOperation, ValueError) as exc:
            return Result.fail(f"transfer: {exc if isinstance(exc, ValueError) else 'amount must be a number'}")
        if not amount.is_finite() or amount <= 0 or not isinstance(params.get("toPerp"), bool):
            return Result.fail("transfer: amount must be a positive number and toPerp true or false")
        refused = self._refusal()
        if refused:
            return Result.fail(refused)
        return self._submit(TRANSFER, "transfer", params, amount, expires_at)

    # -- reads ---------------------------------------------------------------------------------

    @_guarded
    def positions(self, dex: str | None = None) -> Result:
        """The session's perp positions (its share of the account), as ``HyperliquidPosition``."""
        if dex not in (None, "", "perp"):
            return Result.ok([])
        self._sync()
        portfolio = self._gateway.portfolio(self._session.id)
        mine = [p for p in portfolio.positions if p.venue == NAME]
        if not mine:
            return Result.ok([])
        account: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(Exception):
            state = self._venue.user_state(self._session.wallet)
            account = {i["position"]["coin"]: i["position"] for i in state.get("assetPositions", [])}
        rows = []
        for p in mine:
            size = D(p.size)
            held = account.get(p.coin, {})
            value = (held.get("leverage") or {}).get("value")
            leverage = D(str(value)) if value else self._default_leverage(p.coin)
            mark = D(p.markPriceUsd) if p.markPriceUsd is not None else D(p.averageEntryPrice or "0")
            rows.append({"coin": p.coin, "side": "long" if size > 0 else "short", "size": num(abs(size)),
                         "entryPrice": p.averageEntryPrice or "0", "markPrice": num(mark),
                         "liquidationPrice": held.get("liquidationPx"),
                         "unrealizedPnl": p.unrealizedPnlUsd or "0", "leverage": num(leverage),
                         "marginUsed": num((abs(size) * mark / leverage).quantize(D("0.000001")))})
        return Result.ok(rows)

    @_guarded
    def open_orders(self) -> Result:
        """The session's orders still open on the exchange, as ``HyperliquidOrderInfo``."""
        owned = self._gateway.placed_orders(self._session.id, NAME)
        if not owned:
            return Result.ok([])
        rows = []
        for order in self._venue.open_orders(self._session.wallet):
            if str(order.get("oid")) not in owned:
                continue
            original, left = D(str(order.get("origSz", order.get("sz")))), D(str(order.get("sz")))
            rows.append({"orderId": str(order["oid"]), "coin": order["coin"],
                         "side": "buy" if order.get("side") == "B" else "sell", "price": float(order["limitPx"]),
                         "size": float(original), "filled": float(original - left), "status": "open",
                         "market": "perp"})
        return Result.ok(rows)

    @_guarded
    def order(self, order_id: str) -> Result:
        """One order this session placed, as ``HyperliquidOrderInfo``."""
        order_id = str(order_id)
        if not order_id.isdigit() or order_id not in self._venue.owned_order_ids(self._session, self._gateway):
            return Result.fail(f"order: order {order_id} was not placed by session {self._session.id}")
        found = self._venue.info.query_order_by_oid(self._session.wallet, int(order_id))
        if not isinstance(found, dict) or found.get("status") != "order":
            return Result.fail(f"order: Hyperliquid does not know order {order_id}")
        entry = found["order"]
        order = entry["order"]
        original, left = D(str(order.get("origSz", order.get("sz")))), D(str(order.get("sz")))
        return Result.ok({"orderId": order_id, "coin": order["coin"],
                          "side": "buy" if order.get("side") == "B" else "sell", "price": float(order["limitPx"]),
                          "size": float(original), "filled": float(original - left), "status": entry["status"],
                          "market": "perp"})

    @_guarded
    def orders(self) -> Result:
        """The session's orders, open and past, as ``HyperliquidHistoricalOrder``."""
        owned = self._venue.owned_order_ids(self._session, self._gateway)
        if not owned:
            return Result.ok([])
        rows = []
        for entry in self._venue.info.historical_orders(self._session.wallet) or []:
            order = entry.get("order", {})
            if str(order.get("oid")) not in owned:
                continue
            original, left = D(str(order.get("origSz", order.get("sz")))), D(str(order.get("sz")))
            order_type = order.get("orderType", "Limit")
            if order_type == "Limit" and order.get("tif") == "Ioc":
                order_type = "Market"
            rows.append({"orderId": str(order["oid"]), "coin": order["coin"],
                         "side": "buy" if order.get("side") == "B" else "sell", "price": float(order["limitPx"]),
                         "size": float(original), "filled": float(original - left), "status": entry.get("status"),
                         "market": "perp", "timestamp": order.get("timestamp"),
                         "statusTimestamp": entry.get("statusTimestamp"), "orderType": order_type})
        return Result.ok(rows)

    @_guarded
    def order_fills(self) -> Result:
        """Fills of the session's orders, newest first, as ``HyperliquidFill``."""
        owned = self._venue.owned_order_ids(self._session, self._gateway)
        rows = [{"orderId": str(f["oid"]), "coin": f["coin"], "side": "buy" if f.get("side") == "B" else "sell",
                 "direction": f.get("dir", ""), "price": str(f["px"]), "size": str(f["sz"]),
                 "fee": str(f.get("fee", "0")), "timestamp": int(f.get("time", 0)),
                 "isCrossed": bool(f.get("crossed", False))}
                for f in self._venue.user_fills(self._session.wallet) if str(f.get("oid")) in owned]
        return Result.ok(rows)

    @_guarded
    def balances(self) -> Result:
        """``HyperliquidBalances``: ``perp`` is the session's share (its USDC in the ledger plus
        the unrealised PnL of its positions; margin at the account's leverage), ``spot`` the
        account's spot balances."""
        self._sync()
        portfolio = self._gateway.portfolio(self._session.id)
        cash = sum((D(b.valueUsd) for b in portfolio.balances
                    if (b.network, b.assetKey.lower()) == HYPERLIQUID_USDC and b.valueUsd is not None), ZERO)
        mine = [p for p in portfolio.positions if p.venue == NAME]
        leverages = self._leverages() if mine else {}
        unrealized = margin = ZERO
        for p in mine:
            unrealized += D(p.unrealizedPnlUsd or "0")
            mark = D(p.markPriceUsd or p.averageEntryPrice or "0")
            margin += abs(D(p.size)) * mark / leverages.get(p.coin, self._default_leverage(p.coin))
        value = cash + unrealized
        spot = []
        with contextlib.suppress(Exception):
            for b in (self._venue.info.spot_user_state(self._session.wallet) or {}).get("balances", []):
                stable = b.get("coin") == "USDC"
                spot.append({"coin": b.get("coin"), "tokenId": str(b.get("token")), "total": str(b.get("total")),
                             "hold": str(b.get("hold", "0")), "priceUsd": "1" if stable else "0",
                             "valueUsd": str(b.get("total")) if stable else "0", "decimals": 8})
        return Result.ok({"perp": {"accountValue": num(value.quantize(D("0.000001"))),
                                   "totalMarginUsed": num(margin.quantize(D("0.000001"))),
                                   "withdrawable": num(max(ZERO, value - margin).quantize(D("0.000001")))},
                          "spot": spot})

    @_guarded
    def midpoint_price(self, coin: str | list[str], dex: str | None = None) -> Result:
        """``HyperliquidMidpointPrice`` for one coin, or a list for a list of coins."""
        network = f"hypercore:{dex or 'perp'}"
        coins = [coin] if isinstance(coin, str) else list(coin)
        mids = self._venue.mids() if network == NETWORK else {}
        at = self._gateway.clock().isoformat()
        rows = [Aliased({"coin": c, "network": network, "priceUsd": num(mids[c]), "timestamp": at, "isStale": False})
                for c in coins if c in mids]
        if isinstance(coin, str):
            if not rows:
                return Result.fail(f"midpoint_price: no midpoint price for {coin} on {network}")
            return Result.ok(rows[0])
        return Result.ok(rows)

    @_guarded
    def liquidations(self, start_time: int | None = None) -> Result:
        """Liquidations of the account: none on the paper exchange; not available for a real
        exchange yet."""
        if self._venue.paper:
            return Result.ok([])
        return Result.fail("liquidations: not available in tickloop's hyperliquid venue yet")


__all__ = ["HyperliquidApi", "HyperliquidVenue", "OrderPlan", "VenueError", "plan_order", "round_price"]
