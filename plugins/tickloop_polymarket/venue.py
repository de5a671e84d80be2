"""The Polymarket venue: the object the registry's factory returns (:class:`tickloop.venues.Venue`).

- **Configuration** (``[venues.polymarket]``): ``clob_url`` and ``data_url`` (together, or
  neither), ``paper`` (true when those URLs are a paper exchange, e.g. ``tickloop paper
  serve``), ``timeout_seconds``, and for the closer ``close_attempts`` and
  ``close_pause_seconds``. With no URLs the venue uses the exchanges a plugin supplies
  (``tickloop_venue_endpoints``): the paper plugin's, running in this process over state kept in
  the home, unless it is blocked.
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

The exchange itself is :class:`tickloop_polymarket.api.ExchangeApi`; the agent's side is
:mod:`tickloop_polymarket.platform`; recovery and reconciliation are
:mod:`tickloop_polymarket.safekeeping`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from tickloop.actions import Action, Execution
from tickloop.errors import ConfigError, Problem
from tickloop.intents import new_client_id
from tickloop.wallets import POLYMARKET_PUSD
from tickloop_polymarket import NAME
from tickloop_polymarket.api import ExchangeApi, api_error
from tickloop_polymarket.orders import NETWORK, UNIT, SignedOrder, filled, metadata, num, order_hash, share_fill
from tickloop_polymarket.platform import PolymarketApi
from tickloop_polymarket.safekeeping import Safekeeping

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.gateway import Gateway
    from tickloop.sessions import Session
    from tickloop.venues import DefaultEndpoints
    from tickloop.wallets import Wallet

REDEEM_UNSUPPORTED = ("redeeming on-chain needs an RPC endpoint, which tickloop does not support yet;"
                      " redeem resolved positions on polymarket.com or with your own transaction")


def factory(config: Config, endpoints: DefaultEndpoints | None = None) -> PolymarketVenue:
    """Build the venue from ``[venues.polymarket]`` (see the module docstring)."""
    options = dict(config.venues.get(NAME) or {})
    clob_url, data_url = options.get("clob_url") or "", options.get("data_url") or ""
    if bool(clob_url) != bool(data_url):
        missing = "data_url" if clob_url else "clob_url"
        raise ConfigError(Problem(config.source, f"venues.{NAME}.{missing}",
                                  "set clob_url and data_url together (or neither, for the paper exchange)"))
    return PolymarketVenue(config, endpoints)


class PolymarketVenue(Safekeeping):
    """The venue object the registry's factory returns (one per process)."""

    name = NAME

    def __init__(self, config: Config, endpoints: DefaultEndpoints | None = None) -> None:
        options = dict(config.venues.get(NAME) or {})
        self.config = config
        self.api = ExchangeApi(config, options, endpoints)
        self._signed: dict[str, SignedOrder] = {}  # prepared, by order hash, until executed
        self._lock = threading.Lock()
        self.close_attempts = int(options.get("close_attempts", 3))
        self._close_pause = options.get("close_pause_seconds")

    def __repr__(self) -> str:
        return f"PolymarketVenue({self.api!r})"

    @property
    def paper(self) -> bool:
        return self.api.paper

    @property
    def close_pause(self) -> float:
        """Seconds between a closer's sell orders of one position."""
        return float(self._close_pause) if self._close_pause is not None else 0.0 if self.paper else 1.0

    def agent_api(self, session: Session, gateway: Gateway) -> Any:
        return PolymarketApi(self, session, gateway)

    def refusal(self, wallet: Wallet | None) -> str | None:
        """Why ``wallet`` cannot trade here (None: it can)."""
        if wallet is None:
            return ("the session's wallet has not been added to tickloop, so there is no key to sign Polymarket"
                    " orders with; add it (tickloop wallets add)")
        if wallet.is_paper and not self.paper:
            return (f"wallet {wallet.address} is a paper wallet and [venues.{NAME}] points at a real exchange"
                    f" ({self.api.clob_url}); paper wallets trade only on the paper exchange (remove clob_url/data_url,"
                    " or set paper = true when those URLs are a paper exchange)")
        return None

    # -- optional venue methods ------------------------------------------------------------------

    def marks(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
        found = {}
        for network, token in keys:
            if network != NETWORK:
                continue
            mark = self.api.midpoint(token)
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
            return None if isinstance(wallet, str) else self.api.collateral(wallet)
        address = wallet if isinstance(wallet, str) else wallet.address
        self.api.ensure_funded(address)
        return self.api.paper_balance(address)

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
                answer = self.api.client(wallet).cancel_orders([str(i) for i in action.params.get("orderIds") or []])
                return Execution(data=answer)
            return Execution.failed(f"polymarket cannot execute {action.method!r}")
        except Exception as exc:
            return Execution.failed(f"polymarket {action.method} failed: {api_error(exc)}")

    def _unready(self, action: Action, wallet: Wallet | None) -> Execution | None:
        """Why ``wallet`` cannot act here (a failed :class:`Execution`), after funding a paper wallet
        on first use; None when it can."""
        try:
            refused = self.refusal(wallet)
            if refused is None and wallet is not None and wallet.is_paper:
                self.api.ensure_funded(wallet.address)
        except Exception as exc:
            return Execution.failed(f"polymarket {action.method} failed: {api_error(exc)}")
        if refused is not None:
            return Execution.failed(f"polymarket {action.method}: {refused}")
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
            info = self.api.market_info(token)
        except LookupError as exc:
            return Execution.failed(f"polymarket market_order: {exc}")
        try:
            order = self.api.client(wallet).create_market_order(
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
            answer = self.api.client(wallet).post_order(signed.order, signed.order_type)
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
        return filled(signed.side, shares, usd, order_id, signed.info, tx_hashes=answer.get("transactionsHashes"),
                      resting=answer.get("status") == "live")

    def _redeem(self, action: Action, wallet: Wallet) -> Execution:
        if not self.paper:
            return Execution.failed(f"polymarket redeem_positions: {REDEEM_UNSUPPORTED}")
        ids = [str(t) for t in action.params.get("tokenIds") or []]
        # The session's shares (the wallet may hold more for other sessions): none for a token the
        # session does not hold. Without "shares" (an action built elsewhere) the wallet's all.
        shares = action.params.get("shares")
        amounts = {t: str(shares.get(t, "0")) for t in ids} if isinstance(shares, dict) else {}
        answer = self.api.paper_redeem(wallet.address, ids, amounts)
        fills, results = [], []
        for item in answer.get("redeemed") or []:
            info = self.api.market_info(str(item["tokenId"]), fresh=True)
            redeemed = Decimal(str(item["shares"]))
            price = Decimal(1) if item.get("won") else Decimal(0)
            fills.append(share_fill(info, -redeemed, price, item.get("transactionHash")))
            position = {**metadata(info), "formattedShares": num(redeemed), "shares": str(int(redeemed * UNIT)),
                        "valueUsd": num(redeemed * price), "priceUsd": num(price), "isRedeemable": True}
            results.append({"success": True, "position": position, "transactionHash": item.get("transactionHash")})
        for item in answer.get("skipped") or []:
            results.append({"success": False, "position": None, "transactionHash": None,
                            "tokenId": item.get("tokenId"), "error": item.get("reason")})
        return Execution(data=results, fills=tuple(fills))


__all__ = ["PolymarketVenue", "factory"]
