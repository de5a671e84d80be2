"""The Polymarket venue: orders through ``py-clob-client-v2``, holdings through the Data API.

- **Configuration** (``[venues.polymarket]``): ``clob_url`` and ``data_url`` (together, or
  neither), ``paper`` (true when those URLs are a paper exchange, e.g. ``tickloop paper
  serve``), ``timeout_seconds``, and for the closer ``close_attempts`` and
  ``close_pause_seconds``. With no URLs the venue uses the paper exchanges running in this
  process (:func:`tickloop_paper.local_exchanges`), over state kept in the home.
- **Wallets**: orders are signed with the session wallet's key as an EOA (signature type 0):
  the wallet is the maker and holds the pUSD and the outcome shares. API credentials are derived
  from the key once per process (derive first, create when the key has none yet). A paper wallet
  is refused on a real venue; on a paper venue it is funded on first use with
  ``[wallets] paper_funding``.
- **Execution**: ``market_order`` posts a market order (FOK unless the action says FAK) and
  books its fill as outcome shares (``contract="spot"``: cash moves by size × price) bought or
  sold for pUSD. ``redeem_positions`` redeems through the paper exchange's ``/paper/redeem``;
  on a real venue it fails: redeeming is an on-chain transaction (CTF ``redeemPositions``), which
  needs an RPC endpoint tickloop does not support yet. ``cancel_orders`` cancels resting orders.
"""

from __future__ import annotations

import atexit
import logging
import threading
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Iterable

import attrs
import httpx

from tickloop.actions import Action, Execution, Fill
from tickloop.intents import new_client_id
from tickloop.errors import ConfigError, Problem
from tickloop.venues import DefaultEndpoints
from tickloop.wallets import POLYMARKET_PUSD
from tickloop_polymarket.safekeeping import Safekeeping

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.sessions import Session
    from tickloop.venues import Gateway
    from tickloop.wallets import Wallet

NAME = "polymarket"
NETWORK, PUSD = POLYMARKET_PUSD
CHAIN_ID = 137
#: Gnosis CTF on Polygon: the ERC-1155 contract outcome shares live in.
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
DECIMALS = 6
UNIT = Decimal(10) ** DECIMALS
REDEEM_UNSUPPORTED = ("redeeming on-chain needs an RPC endpoint, which tickloop does not support yet;"
                      " redeem resolved positions on polymarket.com or with your own transaction")


def factory(config: Config, endpoints: DefaultEndpoints | None = None) -> PolymarketVenue:
    """Build the venue from ``[venues.polymarket]`` (see the module docstring); without URLs
    there, from the endpoints a plugin supplies (``tickloop_venue_endpoints``)."""
    options = dict(config.venues.get(NAME) or {})
    source = config.source
    clob_url, data_url = options.get("clob_url") or "", options.get("data_url") or ""
    if bool(clob_url) != bool(data_url):
        missing = "data_url" if clob_url else "clob_url"
        raise ConfigError(Problem(source, f"venues.{NAME}.{missing}",
                                  "set clob_url and data_url together (or neither, for the paper exchange)"))
    timeout = float(options.get("timeout_seconds", 10.0))
    if clob_url:
        return PolymarketVenue(config, str(clob_url), str(data_url), paper=bool(options.get("paper", False)),
                               timeout=timeout)
    found = (endpoints or DefaultEndpoints(None, config, NAME)).get("clob_url", "data_url")
    return PolymarketVenue(config, found.urls["clob_url"], found.urls["data_url"], paper=found.paper, timeout=timeout)


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
    return f"{type(exc).__name__}: {exc}"


def num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@attrs.frozen
class SignedOrder:
    """A market order signed by :meth:`PolymarketVenue.prepare`, waiting to be posted."""

    order: Any  # py_clob_client_v2's SignedOrderV2
    order_hash: str
    order_type: str
    side: str
    token: str
    info: dict[str, Any] = attrs.field(eq=False)


def order_hash(order: Any) -> str:
    """A signed V2 order's id: the EIP-712 hash the CLOB answers ``orderID`` with, for the
    exchange contract its signature was made for (recovering to its signer)."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from py_clob_client_v2.config import get_contract_config
    from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2

    contracts = get_contract_config(CHAIN_ID)
    for contract, version in ((contracts.exchange_v2, "2"), (contracts.neg_risk_exchange_v2, "2"),
                              (contracts.exchange_v3, "3")):
        builder = ExchangeOrderBuilderV2(contract, CHAIN_ID, None, domain_version=version)  # type: ignore[arg-type]
        typed = builder.build_order_typed_data(order)
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=order.signature)
        if signer.lower() == str(order.signer).lower():
            return builder.build_order_hash(typed)
    raise ValueError("the order's signature matches no Polymarket exchange contract")


class PolymarketVenue(Safekeeping):
    """The venue object the registry's factory returns (one per process)."""

    name = NAME

    def __init__(self, config: Config, clob_url: str, data_url: str, *, paper: bool, timeout: float = 10.0) -> None:
        from py_clob_client_v2 import ClobClient

        self.config = config
        self.clob_url = clob_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.paper = paper
        self.public = ClobClient(self.clob_url, chain_id=CHAIN_ID)
        self.timeout = timeout
        self._clients: dict[str, Any] = {}
        self._funded: set[str] = set()
        self._meta: dict[str, dict[str, Any]] = {}
        self._signed: dict[str, SignedOrder] = {}  # prepared, by order hash, until executed
        self._lock = threading.Lock()
        options = dict(config.venues.get(NAME) or {})
        self.close_attempts = int(options.get("close_attempts", 3))
        self.close_pause = float(options.get("close_pause_seconds", 0.0 if paper else 1.0))

    def __repr__(self) -> str:
        return f"PolymarketVenue({'paper' if self.paper else 'real'}, clob={self.clob_url}, data={self.data_url})"

    # -- the agent's side ------------------------------------------------------------------------

    def agent_api(self, session: Session, gateway: Gateway) -> Any:
        from tickloop_polymarket.api import PolymarketApi

        return PolymarketApi(self, session, gateway)

    # -- clients ---------------------------------------------------------------------------------

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

    def refusal(self, wallet: Wallet | None) -> str | None:
        """Why ``wallet`` cannot trade here (None: it can)."""
        if wallet is None:
            return ("the session's wallet has not been added to tickloop, so there is no key to sign Polymarket"
                    " orders with; add it (tickloop wallets add)")
        if wallet.is_paper and not self.paper:
            return (f"wallet {wallet.address} is a paper wallet and [venues.{NAME}] points at a real exchange"
                    f" ({self.clob_url}); paper wallets trade only on the paper exchange (remove clob_url/data_url,"
                    " or set paper = true when those URLs are a paper exchange)")
        return None

    def ensure_funded(self, address: str) -> None:
        """Fund a paper account with ``[wallets] paper_funding`` the first time it is used."""
        if not self.paper or address.lower() in self._funded:
            return
        pusd = Decimal(int(self.config.wallets.paper_funding)) / UNIT
        response = self._request("POST", f"{self.clob_url}/paper/fund",
                                 json={"address": address, "pusd": str(pusd), "initial": True})
        response.raise_for_status()
        self._funded.add(address.lower())

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

    @staticmethod
    def metadata(info: dict[str, Any]) -> dict[str, Any]:
        """What a fill keeps as the position's ``polymarketMetadata`` (the static facts)."""
        keys = ("contractAddress", "tokenId", "decimals", "conditionId", "question", "outcome", "outcomeIndex",
                "isNegativeRisk", "imageUrl", "endDate", "slug")
        return {key: info[key] for key in keys}

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

    # -- optional venue methods ------------------------------------------------------------------

    def marks(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
        found = {}
        for network, token in keys:
            if network != NETWORK:
                continue
            mark = self.midpoint(token)
            if mark is not None:
                found[(network, token)] = mark
        return found

    def balance(self, wallet: Wallet | str, network: str, asset: str) -> int | None:
        """pUSD of ``wallet`` in raw units: on the paper exchange (funded first), or on a real
        CLOB through ``GET /balance-allowance`` signed with the wallet's key (L2); None for other
        assets, or for a bare address on a real CLOB (there is no key to sign with)."""
        if (network, asset.lower()) != POLYMARKET_PUSD:
            return None
        if not self.paper:
            if isinstance(wallet, str):
                return None
            from py_clob_client_v2.clob_types import AssetType, BalanceAllowanceParams

            answer = self.client(wallet).get_balance_allowance(BalanceAllowanceParams(asset_type=AssetType.COLLATERAL))
            return int(Decimal(str(answer["balance"])))
        address = getattr(wallet, "address", wallet)
        self.ensure_funded(address)
        response = self._request("GET", f"{self.clob_url}/paper/balance", params={"address": address})
        response.raise_for_status()
        return int(response.json()["pusd"])

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return _http().request(method, url, timeout=self.timeout, **kwargs)

    # -- execution -------------------------------------------------------------------------------

    def prepare(self, action: Action, wallet: Wallet | None) -> str | Execution:
        """The client id of ``action``: for a market order, the order is built and signed now and
        its id is its EIP-712 hash, which the CLOB answers ``orderID`` with and ``GET
        /data/order/{hash}`` finds (the signed order is kept for :meth:`execute`); other actions
        get a fresh id. A failed :class:`Execution` when the order cannot be built."""
        if action.method != "market_order":
            return new_client_id()
        refused = self._unready(action, wallet)
        if refused is not None:
            return refused
        assert wallet is not None
        try:
            signed = self._sign_market_order(action, wallet)
        except Exception as exc:
            return Execution.failed(f"polymarket {action.method} failed: {api_error(exc)}")
        if isinstance(signed, Execution):
            return signed
        with self._lock:
            self._signed[signed.order_hash] = signed
        return signed.order_hash

    def execute(self, action: Action, wallet: Wallet | None, client_id: str | None = None) -> Execution:
        """Execute ``action``; a market order ``prepare`` signed under ``client_id`` is posted as
        signed (one not prepared is built and signed now)."""
        refused = self._unready(action, wallet)
        if refused is not None:
            return refused
        assert wallet is not None
        try:
            if action.method == "market_order":
                with self._lock:
                    signed = self._signed.pop(client_id, None) if client_id else None
                return self._market_order(signed or self._sign_market_order(action, wallet), wallet)
            if action.method == "redeem_positions":
                return self._redeem(action, wallet)
            if action.method == "cancel_orders":
                answer = self.client(wallet).cancel_orders([str(i) for i in action.params.get("orderIds") or []])
                return Execution(data=answer)
            return Execution.failed(f"polymarket cannot execute {action.method!r}")
        except Exception as exc:
            return Execution.failed(f"polymarket {action.method} failed: {api_error(exc)}")

    def _unready(self, action: Action, wallet: Wallet | None) -> Execution | None:
        """Why ``wallet`` cannot act here (a failed :class:`Execution`), after funding a paper wallet
        on first use; None when it can."""
        refused = self.refusal(wallet)
        if refused is not None:
            return Execution.failed(f"polymarket {action.method}: {refused}")
        assert wallet is not None
        try:
            if wallet.is_paper:
                self.ensure_funded(wallet.address)
        except Exception as exc:
            return Execution.failed(f"polymarket {action.method} failed: {api_error(exc)}")
        return None

    def _sign_market_order(self, action: Action, wallet: Wallet) -> SignedOrder | Execution:
        """Build and sign the market order of ``action`` (the client prices it from the book)."""
        from py_clob_client_v2.clob_types import MarketOrderArgsV2

        p = action.params
        token, side = str(p["tokenId"]), str(p["side"]).upper()
        # The client floors the amount to 2 decimals in floating point (1.15 * 100 = 114.999...),
        # which would sell 1.14 of 1.15 shares: floor it here, exactly, and hand over a float a hair
        # above the 2-decimal value.
        exact = Decimal(str(p["size"])).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        if exact <= 0:
            return Execution.failed(f"polymarket market_order: size {p['size']} is below 0.01")
        size = float(exact) + 1e-9
        order_type = str(p.get("orderType") or "FOK").upper()
        try:
            info = self.market_info(token)
        except LookupError as exc:
            return Execution.failed(f"polymarket market_order: {exc}")
        try:
            order = self.client(wallet).create_market_order(
                MarketOrderArgsV2(token_id=token, amount=size, side=side, order_type=order_type))
        except Exception as exc:
            message = api_error(exc)
            if str(exc) == "no match":  # the client walked the book and found too little
                message = (f"no match: the order book cannot fill a {side} of {num(exact)}"
                           f" {'USD' if side == 'BUY' else 'shares'} ({order_type})")
            return Execution.failed(f"polymarket market_order refused: {message}")
        return SignedOrder(order, order_hash(order), order_type, side, token, info)

    def _market_order(self, signed: SignedOrder | Execution, wallet: Wallet) -> Execution:
        if isinstance(signed, Execution):
            return signed
        try:
            answer = self.client(wallet).post_order(signed.order, signed.order_type)
        except Exception as exc:
            return Execution.failed(f"polymarket market_order refused: {api_error(exc)}")
        if not isinstance(answer, dict) or not answer.get("success", False) or answer.get("errorMsg"):
            reason = answer.get("errorMsg") if isinstance(answer, dict) else answer
            return Execution.failed(f"polymarket market_order refused: {reason or 'no reason given'}")
        making = Decimal(str(answer.get("makingAmount") or 0))
        taking = Decimal(str(answer.get("takingAmount") or 0))
        shares, usd = (taking, making) if signed.side == "BUY" else (making, taking)
        order_id = str(answer.get("orderID") or signed.order_hash)
        if shares <= 0:
            return Execution.failed(f"polymarket market_order was not filled (status {answer.get('status')!r})")
        return self.filled(signed.token, signed.side, shares, usd, order_id, signed.info,
                           tx_hashes=answer.get("transactionsHashes"), resting=answer.get("status") == "live")

    def filled(self, token: str, side: str, shares: Decimal, usd: Decimal, order_id: str, info: dict[str, Any], *,
               tx_hashes: Any = None, resting: bool = False) -> Execution:
        """The execution of an order that matched ``shares`` for ``usd``: the fill and the answer."""
        price = (usd / shares).quantize(Decimal("1e-12")).normalize()
        fill = Fill(venue=NAME, network=NETWORK, asset_key=token, coin=info["outcome"] or token,
                    size=shares if side == "BUY" else -shares, price=price, fee=Decimal(0), contract="spot",
                    cash_network=NETWORK, cash_asset=PUSD, cash_symbol="pUSD", cash_decimals=DECIMALS,
                    order_id=order_id, meta=self.metadata(info))
        data = {"success": True, "orderInfo": {"orderId": order_id, "side": side, "size": num(shares),
                                               "priceUsd": num(price), "totalPriceUsd": num(usd),
                                               "txHashes": list(tx_hashes or [])}}
        return Execution(data=data, fills=(fill,), order_ids=(order_id,) if resting else ())

    def _redeem(self, action: Action, wallet: Wallet) -> Execution:
        if not self.paper:
            return Execution.failed(f"polymarket redeem_positions: {REDEEM_UNSUPPORTED}")
        ids = [str(t) for t in action.params.get("tokenIds") or []]
        # The session's shares (the wallet may hold more for other sessions): none for a token the
        # session does not hold. Without "shares" (an action built elsewhere) the wallet's all.
        shares = action.params.get("shares")
        amounts = {t: str(shares.get(t, "0")) for t in ids} if isinstance(shares, dict) else {}
        response = self._request("POST", f"{self.clob_url}/paper/redeem",
                                 json={"address": wallet.address, "token_ids": ids, "amounts": amounts})
        response.raise_for_status()
        answer = response.json()
        fills, results = [], []
        for item in answer.get("redeemed") or []:
            token = str(item["tokenId"])
            info = self.market_info(token, fresh=True)
            shares = Decimal(str(item["shares"]))
            price = Decimal(1) if item.get("won") else Decimal(0)
            fills.append(Fill(venue=NAME, network=NETWORK, asset_key=token, coin=info["outcome"] or token,
                              size=-shares, price=price, contract="spot", cash_network=NETWORK, cash_asset=PUSD,
                              cash_symbol="pUSD", cash_decimals=DECIMALS, order_id=item.get("transactionHash"),
                              meta=self.metadata(info)))
            position = {**self.metadata(info), "formattedShares": num(shares),
                        "shares": str(int(shares * UNIT)), "valueUsd": num(shares * price), "priceUsd": num(price),
                        "isRedeemable": True}
            results.append({"success": True, "position": position, "transactionHash": item.get("transactionHash")})
        for item in answer.get("skipped") or []:
            results.append({"success": False, "position": None, "transactionHash": None,
                            "tokenId": item.get("tokenId"), "error": item.get("reason")})
        return Execution(data=results, fills=tuple(fills))
