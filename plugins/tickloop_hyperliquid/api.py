"""Talking to Hyperliquid through the official ``hyperliquid-python-sdk``: ``Info`` for reads,
``Exchange`` for signed actions, one signer at a time.

The exchange is the configured ``[venues.hyperliquid] base_url`` (real unless marked ``paper =
true``), else the one a plugin supplies (``tickloop_venue_endpoints``; the paper plugin's paper
exchange for the home), asked on the first request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tickloop.errors import TickloopError
from tickloop.venues import DefaultEndpoints, Endpoints
from tickloop_hyperliquid import NAME
from tickloop_hyperliquid.orders import ZERO, OrderPlan

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.wallets import Wallet

D = Decimal


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


def answer_lost(exc: BaseException) -> bool:
    """Whether the exchange may have acted on a request whose answer did not arrive (a 5xx,
    a timeout or a dropped connection), as opposed to a refusal or a local error."""
    import requests
    from hyperliquid.utils.error import ServerError

    return isinstance(exc, (ServerError, requests.RequestException))


def _statuses(answer: Any) -> list[Any]:
    """The per-order statuses of an ``/exchange`` answer; VenueError when it is an error."""
    if isinstance(answer, dict) and answer.get("status") == "ok":
        response = answer.get("response")
        if isinstance(response, dict):
            statuses = (response.get("data") or {}).get("statuses")
            if isinstance(statuses, list) and statuses:
                return statuses
    if isinstance(answer, dict) and answer.get("status") == "err":
        raise VenueError(str(answer.get("response")))
    raise VenueError(f"unexpected answer from Hyperliquid: {str(answer)[:200]}")


class ExchangeApi:
    """One Hyperliquid exchange (one per venue object): its meta, the SDK's clients, reads, and
    signed actions serialised per signer."""

    def __init__(self, config: Config, options: Mapping[str, Any], endpoints: DefaultEndpoints | None) -> None:
        self.config = config
        self._options = options
        self._defaults = endpoints or DefaultEndpoints(None, config, NAME)
        self._endpoints: Endpoints | None = None
        self.timeout = float(options.get("timeout_seconds", 10))
        self._lock = threading.RLock()
        self._meta: dict[str, Any] | None = None
        self._spot_meta: dict[str, Any] | None = None
        self._info: Any = None
        self._exchanges: dict[str, Any] = {}
        self._funded: set[str] = set()
        self._signers: dict[str, threading.Lock] = {}

    # -- connection ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        """Where the exchange is: configured, else supplied by a plugin (asked on first use)."""
        if self._endpoints is None:
            self._endpoints = self._defaults.resolve(self._options, "base_url")
        return self._endpoints

    @property
    def base_url(self) -> str:
        # The SDK signs for mainnet only when the URL equals its constant exactly (no slash).
        return self.endpoints.urls["base_url"]

    @property
    def paper(self) -> bool:
        """Whether the exchange is a paper exchange (paper wallets trade only there)."""
        return self.endpoints.paper

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

    def close(self) -> None:
        with self._lock:
            for exchange in self._exchanges.values():
                with contextlib.suppress(Exception):
                    exchange.session.close()
            self._exchanges.clear()

    # -- signed actions ------------------------------------------------------------------------

    def place(self, wallet: Wallet, plan: OrderPlan, cloid: str) -> Any:
        """Send ``plan``'s order under the client order id ``cloid``; the exchange's status of it."""
        from hyperliquid.utils.types import Cloid

        exchange = self.exchange(wallet)
        with self.signing(wallet.address):
            answer = exchange.order(plan.coin, plan.is_buy, float(plan.size), float(plan.price), plan.order_type,
                                    reduce_only=plan.reduce_only, cloid=Cloid.from_str(cloid))
        return _statuses(answer)[0]

    def cancel(self, wallet: Wallet, coin: str, order_id: int) -> Any:
        """Cancel an open order; the exchange's status of the cancel (``"success"``)."""
        exchange = self.exchange(wallet)
        with self.signing(wallet.address):
            answer = exchange.cancel(coin, order_id)
        return _statuses(answer)[0]

    def transfer(self, wallet: Wallet, amount: float, to_perp: bool) -> None:
        """Move USDC between the account's spot and perp balances; VenueError when refused."""
        exchange = self.exchange(wallet)
        with self.signing(wallet.address):
            answer = exchange.usd_class_transfer(amount, to_perp)
        if not (isinstance(answer, dict) and answer.get("status") == "ok"):
            raise VenueError(str(answer.get("response") if isinstance(answer, dict) else answer))

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
