"""Talking to Polymarket: the CLOB through the official ``py-clob-client-v2`` (L1/L2 auth per
wallet, orders, open orders, markets), and over plain ``httpx`` what the client does not wrap:
the Data API's ``GET /positions``, the public reads that answer 404 routinely (``/book``,
``/midpoint``, ``/markets-by-token``), and a paper exchange's ``/paper/*`` calls.

The endpoints are ``[venues.polymarket] clob_url, data_url`` (real unless marked ``paper =
true``), else the ones a plugin supplies (``tickloop_venue_endpoints``; the paper plugin's paper
exchanges for the home), asked on the first request.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from tickloop.errors import TickloopError
from tickloop.venues import DefaultEndpoints, Endpoints
from tickloop_polymarket import NAME
from tickloop_polymarket.orders import CHAIN_ID, CONDITIONAL_TOKENS, DECIMALS, UNIT

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.wallets import Wallet

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """The process's HTTP client for the Data API and the CLOB reads the official client does
    not wrap: one pool for every venue object (the runtime does not close venues, and building a
    client per request loads the CA bundle each time), closed at exit."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client()
            atexit.register(_client.close)
        return _client


class _NoKeyYet(logging.Filter):
    """Drops the client's error log of the expected refusals: deriving the API key of a wallet
    that has none yet (the venue then creates one), and looking up an order the CLOB never
    received (recovery asks by hash; "not found" is an answer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (("status=400" in text and "/auth/derive-api-key" in text)
                    or ("status=404" in text and "/data/order/" in text))


_no_key_yet = _NoKeyYet()


def api_error(exc: BaseException) -> str:
    """One line for an exception of the client or of HTTP."""
    from py_clob_client_v2.exceptions import PolyApiException, PolyException

    if isinstance(exc, PolyApiException):
        message = exc.error_msg
        if isinstance(message, dict):
            message = message.get("error") or message.get("errorMsg") or message
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        return f"{message}{status}"
    if isinstance(exc, PolyException):
        return str(exc.msg)
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            body = exc.response.json().get("error") or exc.response.text
        except Exception:
            body = exc.response.text
        return f"{body} (HTTP {exc.response.status_code})"
    if isinstance(exc, TickloopError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class ExchangeApi:
    """One Polymarket CLOB and Data API (one per venue object): clients per wallet, markets'
    facts (cached), prices, books, positions, and a paper exchange's funding, balances and
    redemptions."""

    def __init__(self, config: Config, options: Mapping[str, Any], endpoints: DefaultEndpoints | None) -> None:
        self.config = config
        self._options = options
        self._defaults = endpoints or DefaultEndpoints(None, config, NAME)
        self._endpoints: Endpoints | None = None
        self.timeout = float(options.get("timeout_seconds", 10.0))
        self._public: Any = None
        self._clients: dict[str, Any] = {}
        self._funded: set[str] = set()
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        if self._endpoints is None:
            return "ExchangeApi(not connected yet)"
        urls = self._endpoints.urls
        return f"ExchangeApi({'paper' if self.paper else 'real'}, clob={urls['clob_url']}, data={urls['data_url']})"

    # -- connection ------------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        """Where the exchanges are: configured, else supplied by a plugin (asked on first use)."""
        if self._endpoints is None:
            self._endpoints = self._defaults.resolve(self._options, "clob_url", "data_url")
        return self._endpoints

    @property
    def clob_url(self) -> str:
        return self.endpoints.urls["clob_url"]

    @property
    def data_url(self) -> str:
        return self.endpoints.urls["data_url"]

    @property
    def paper(self) -> bool:
        """Whether the exchanges are paper exchanges (paper wallets trade only there)."""
        return self.endpoints.paper

    @property
    def public(self) -> Any:
        """The CLOB client for public reads (no key)."""
        with self._lock:
            if self._public is None:
                from py_clob_client_v2 import ClobClient

                self._public = ClobClient(self.clob_url, chain_id=CHAIN_ID)
            return self._public

    def client(self, wallet: Wallet) -> Any:
        """An L2 client signing with ``wallet``'s key (API credentials derived once per process)."""
        address = wallet.address.lower()
        with self._lock:
            found = self._clients.get(address)
        if found is not None:
            return found
        from py_clob_client_v2 import ClobClient

        account = wallet.account(self.config.home)
        client = ClobClient(self.clob_url, chain_id=CHAIN_ID, key="0x" + bytes(account.key).hex(), signature_type=0)
        helpers = logging.getLogger("py_clob_client_v2.http_helpers.helpers")
        if _no_key_yet not in helpers.filters:
            helpers.addFilter(_no_key_yet)
        try:
            creds = client.derive_api_key()  # the common case: the key already has credentials
        except Exception:
            creds = client.create_api_key()
        client.set_api_creds(creds)
        with self._lock:
            self._clients[address] = client
        return client

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return _http().request(method, url, timeout=self.timeout, **kwargs)

    # -- reads -----------------------------------------------------------------------------------

    def market_info(self, token_id: str, *, fresh: bool = False) -> dict[str, Any]:
        """Static facts about the market of ``token_id`` (cached), as PolymarketPosition names them,
        plus ``closed``/``resolved``/``winner`` as of the lookup (``fresh`` re-reads them)."""
        with self._lock:
            cached = self._meta.get(token_id)
        if cached is not None and not fresh:
            return cached
        response = self._request("GET", f"{self.clob_url}/markets-by-token/{token_id}")
        if response.status_code == 404:
            raise LookupError(f"unknown Polymarket token id {token_id}")
        response.raise_for_status()
        market = self.public.get_market(response.json()["condition_id"])
        tokens = market.get("tokens") or []
        index = next((i for i, t in enumerate(tokens) if str(t.get("token_id")) == token_id), 0)
        token = tokens[index] if tokens else {}
        opposite = tokens[1 - index] if len(tokens) == 2 else {}
        winner = next((str(t["token_id"]) for t in tokens if t.get("winner")), None)
        info = {
            "contractAddress": CONDITIONAL_TOKENS, "tokenId": token_id, "decimals": DECIMALS,
            "conditionId": market.get("condition_id"), "question": market.get("question") or "",
            "outcome": token.get("outcome") or "", "outcomeIndex": index,
            "oppositeOutcome": opposite.get("outcome"), "oppositeTokenId": str(opposite.get("token_id") or "") or None,
            "isNegativeRisk": bool(market.get("neg_risk")), "imageUrl": market.get("icon") or market.get("image") or "",
            "endDate": market.get("end_date_iso") or "", "slug": market.get("market_slug") or "",
            "closed": bool(market.get("closed")), "resolved": winner is not None, "winner": winner,
        }
        with self._lock:
            self._meta[token_id] = info
        return info

    def midpoint(self, token_id: str) -> Decimal | None:
        """The book's midpoint; for a resolved market its payout (1 or 0); None when unknown."""
        # Plain HTTP for the public reads a 404 answers routinely (closed markets): the client
        # would log each one as an error.
        response = self._request("GET", f"{self.clob_url}/midpoint", params={"token_id": token_id})
        if response.status_code != 404:
            response.raise_for_status()
            return Decimal(str(response.json()["mid"]))
        info = self.market_info(token_id, fresh=True)
        if info["resolved"]:
            return Decimal(1) if info["winner"] == token_id else Decimal(0)
        return None

    def book(self, token_id: str) -> dict[str, Any] | None:
        """The order book (None when the market has none: closed or resolved)."""
        response = self._request("GET", f"{self.clob_url}/book", params={"token_id": token_id})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def data_positions(self, address: str) -> dict[str, dict[str, Any]]:
        """The Data API's positions of ``address`` (every size), by token id."""
        response = self._request("GET", f"{self.data_url}/positions",
                                 params={"user": address, "sizeThreshold": "0", "limit": "500"})
        response.raise_for_status()
        return {str(row["asset"]): row for row in response.json()}

    def open_orders(self, wallet: Wallet) -> list[dict[str, Any]]:
        return self.client(wallet).get_open_orders()

    def markets(self) -> list[dict[str, Any]]:
        """The open markets of the CLOB's first page, simplified (a tickloop helper)."""
        page = self.public.get_markets()
        out = []
        for m in page.get("data") or []:
            if m.get("closed") or not m.get("active", True) or not m.get("accepting_orders", True):
                continue
            out.append({"conditionId": m.get("condition_id"), "question": m.get("question"),
                        "slug": m.get("market_slug"), "negRisk": bool(m.get("neg_risk")),
                        "endDate": m.get("end_date_iso"), "minimumOrderSize": m.get("minimum_order_size"),
                        "tickSize": m.get("minimum_tick_size"),
                        "tokens": [{"tokenId": str(t["token_id"]), "outcome": t.get("outcome"),
                                    "price": t.get("price")} for t in m.get("tokens") or []]})
        return out

    def collateral(self, wallet: Wallet) -> int:
        """The wallet's pUSD on the CLOB in raw units (``GET /balance-allowance``, signed: L2)."""
        from py_clob_client_v2.clob_types import AssetType, BalanceAllowanceParams

        answer = self.client(wallet).get_balance_allowance(BalanceAllowanceParams(asset_type=AssetType.COLLATERAL))
        return int(Decimal(str(answer["balance"])))

    # -- a paper exchange's own calls ------------------------------------------------------------

    def ensure_funded(self, address: str) -> None:
        """Fund a paper account with ``[wallets] paper_funding`` the first time it is used."""
        if not self.paper or address.lower() in self._funded:
            return
        pusd = Decimal(int(self.config.wallets.paper_funding)) / UNIT
        response = self._request("POST", f"{self.clob_url}/paper/fund",
                                 json={"address": address, "pusd": str(pusd), "initial": True})
        response.raise_for_status()
        self._funded.add(address.lower())

    def paper_balance(self, address: str) -> int:
        """The paper account's pUSD in raw units."""
        response = self._request("GET", f"{self.clob_url}/paper/balance", params={"address": address})
        response.raise_for_status()
        return int(response.json()["pusd"])

    def paper_redeem(self, address: str, token_ids: list[str], amounts: dict[str, str]) -> dict[str, Any]:
        """Redeem shares of resolved markets on the paper exchange: ``{redeemed, skipped}``."""
        response = self._request("POST", f"{self.clob_url}/paper/redeem",
                                 json={"address": address, "token_ids": token_ids, "amounts": amounts})
        response.raise_for_status()
        return response.json()
