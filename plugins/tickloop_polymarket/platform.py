"""``agent.platforms.polymarket``: Circuit's Polymarket methods and response shapes.

- ``market_order({tokenId, size, side, expiresAt?})``: BUY spends ``size`` USD, SELL sells
  ``size`` shares; executed as a fill-or-kill market order (auto mode) or suggested (manual).
  ``data`` is ``{success: True, orderInfo: {orderId, side, size, priceUsd, totalPriceUsd,
  txHashes}}``. A SELL may not exceed what the session holds of the token (the wallet may hold
  more, for other sessions).
- ``positions()``: ``{totalValue, positions: [PolymarketPosition]}`` for what the *session*
  holds (its ledger), priced from the Data API (the market's current price, redeemable) and the
  CLOB.
- ``redeem_positions({tokenIds})``: redeems the session's shares of resolved markets: a list of
  ``{success, position, transactionHash}``. Paper venue only (see :mod:`tickloop_polymarket.venue`).
- ``markets()`` (tickloop's, not Circuit's): the open markets with their outcome tokens and
  prices, so an agent can discover token ids.

``token_id``/``token_ids`` are accepted for ``tokenId``/``tokenIds``, as in the Circuit SDK. No
method raises into agent code: failures are ``Result(success=False, error=...)``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from tickloop.actions import ORDER, REDEEM, Action
from tickloop.results import Result
from tickloop_polymarket import NAME
from tickloop_polymarket.api import api_error
from tickloop_polymarket.orders import CONDITIONAL_TOKENS, DECIMALS, UNIT, num

if TYPE_CHECKING:
    from tickloop.gateway import Gateway
    from tickloop.ledger import Holding
    from tickloop.sessions import Session
    from tickloop_polymarket.venue import PolymarketVenue

log = logging.getLogger("tickloop.polymarket")


def as_dict(request: Any) -> dict[str, Any]:
    """A request given as a dict or as an SDK (pydantic) model."""
    if isinstance(request, dict):
        return dict(request)
    dump = getattr(request, "model_dump", None)
    if dump is not None:
        return dict(dump(by_alias=True, exclude_none=True))
    raise TypeError(f"expected a dict, got {type(request).__name__}")


def parse_expiry(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class PolymarketApi:
    """One run's view of the venue for one session."""

    def __init__(self, venue: PolymarketVenue, session: Session, gateway: Gateway) -> None:
        self._venue = venue
        self._session = session
        self._gateway = gateway

    def __repr__(self) -> str:
        return f"PolymarketApi(session={self._session.id}, venue={self._venue!r})"

    def _holdings(self) -> dict[str, Holding]:
        book = self._gateway.book(self._session.id)
        return {h.asset_key: h for h in book.holdings.values() if h.venue == NAME}

    # -- Circuit's methods -----------------------------------------------------------------------

    def market_order(self, request: Any) -> Result:
        """Buy ``size`` USD or sell ``size`` shares of ``tokenId`` at market (fill or kill)."""
        try:
            r = as_dict(request)
            token = str(r.get("tokenId", r.get("token_id")) or "").strip()
            side = str(r.get("side") or "").upper()
            size = Decimal(str(r.get("size")))
            expires = parse_expiry(r.get("expiresAt", r.get("expires_at")))
        except (TypeError, ValueError, InvalidOperation) as exc:
            return Result.fail(f"market_order: bad request: {exc}")
        if not token.isdigit():
            return Result.fail(f"market_order: tokenId must be an outcome token id (a decimal string), got {token!r}")
        if side not in ("BUY", "SELL"):
            return Result.fail(f"market_order: side must be 'BUY' or 'SELL', got {r.get('side')!r}")
        if not size.is_finite() or size <= 0:
            return Result.fail(f"market_order: size must be a positive number, got {r.get('size')!r}")
        try:
            info = self._venue.api.market_info(token)
        except LookupError as exc:
            return Result.fail(f"market_order: {exc}")
        except Exception as exc:
            return Result.fail(f"market_order: cannot look up token {token}: {api_error(exc)}")
        if side == "SELL":
            held = self._holdings().get(token)
            have = held.size if held is not None else Decimal(0)
            if size > have:
                return Result.fail(f"market_order: session {self._session.id} holds {num(have)} shares of"
                                   f" {info['outcome']!r} ({info['question']}); it cannot sell {num(size)}")
        mark = None
        if side == "SELL":
            try:
                mark = self._venue.api.midpoint(token)
            except Exception as exc:  # the notional is best effort: a router may see None
                log.debug("no midpoint for %s: %s", token, exc)
        notional = size if side == "BUY" else (size * mark if mark is not None else None)
        what = f"${num(size)} of" if side == "BUY" else f"{num(size)} shares of"
        caption = r.get("message") or f"{side.capitalize()} {what} {info['outcome']!r}: {info['question']}"
        params: dict[str, Any] = {"tokenId": token, "size": float(size), "side": side}
        if expires is not None:
            params["expiresAt"] = expires.isoformat()
        action = Action(venue=NAME, kind=ORDER, method="market_order", params=params, session_id=self._session.id,
                        wallet=self._session.wallet, notional_usd=notional, expires_at=expires,
                        message=str(caption)[:250])
        return self._gateway.submit(self._session, action)

    def positions(self) -> Result:
        """What the session holds on Polymarket, as Circuit's PolymarketPosition list."""
        try:
            holdings = {t: h for t, h in self._holdings().items() if h.size != 0}
            rows: dict[str, dict[str, Any]] = {}
            if holdings:
                try:
                    rows = self._venue.api.data_positions(self._session.wallet)
                except Exception as exc:  # the CLOB still prices them
                    log.warning("the Data API did not answer: %s", api_error(exc))
            positions = [self._position(h, rows.get(token)) for token, h in holdings.items()]
        except Exception as exc:
            return Result.fail(f"positions: {api_error(exc)}")
        total = sum((Decimal(p["valueUsd"]) for p in positions), Decimal(0))
        return Result.ok({"totalValue": float(total), "positions": positions})

    def _position(self, h: Holding, row: dict[str, Any] | None) -> dict[str, Any]:
        token = h.asset_key
        meta = dict(h.meta or {})
        try:
            info = self._venue.api.market_info(token)
        except Exception:
            info = {}
        if row is not None:
            price = Decimal(str(row["curPrice"]))
            redeemable = bool(row.get("redeemable"))
        else:
            mark = self._venue.api.midpoint(token)
            price = mark if mark is not None else (h.last_price or Decimal(0))
            redeemable = bool(self._venue.api.market_info(token, fresh=True)["resolved"])
        shares, average = h.size, h.average_price
        value, initial = shares * price, shares * average
        pnl = value - initial
        realized_basis = h.realized_pnl
        return {
            "contractAddress": meta.get("contractAddress") or CONDITIONAL_TOKENS,
            "tokenId": token,
            "decimals": int(meta.get("decimals") or DECIMALS),
            "conditionId": meta.get("conditionId") or info.get("conditionId") or "",
            "formattedShares": num(shares),
            "shares": str(int((shares * UNIT).to_integral_value())),
            "valueUsd": num(value),
            "question": meta.get("question") or info.get("question") or "",
            "outcome": meta.get("outcome") or info.get("outcome") or h.coin,
            "priceUsd": num(price),
            "averagePriceUsd": num(average),
            "isRedeemable": redeemable,
            "isNegativeRisk": bool(meta.get("isNegativeRisk", info.get("isNegativeRisk", False))),
            "imageUrl": meta.get("imageUrl") or info.get("imageUrl") or "",
            "initialValue": num(initial),
            "pnlUsd": num(pnl),
            "pnlPercent": num(pnl / initial * 100) if initial else "0",
            "pnlRealizedUsd": num(realized_basis),
            "pnlRealizedPercent": num(realized_basis / initial * 100) if initial else "0",
            "endDate": meta.get("endDate") or info.get("endDate") or "",
        }

    def redeem_positions(self, request: Any) -> Result:
        """Redeem the session's shares of resolved markets (``tokenIds``)."""
        try:
            r = as_dict(request)
        except TypeError as exc:
            return Result.fail(f"redeem_positions: bad request: {exc}")
        ids = r.get("tokenIds", r.get("token_ids"))
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, (list, tuple)) or not ids or not all(str(i).strip().isdigit() for i in ids):
            return Result.fail("redeem_positions: tokenIds must be a non-empty list of outcome token ids")
        tokens = [str(i).strip() for i in ids]
        try:
            holdings = self._holdings()
        except Exception as exc:
            return Result.fail(f"redeem_positions: {exc}")
        # Only the session's own shares are redeemed: the wallet may hold more for other sessions.
        shares = {t: num(holdings[t].size) for t in tokens if t in holdings and holdings[t].size > 0}
        action = Action(venue=NAME, kind=REDEEM, method="redeem_positions",
                        params={"tokenIds": tokens, "shares": shares}, session_id=self._session.id,
                        wallet=self._session.wallet,
                        notional_usd=sum((Decimal(v) for v in shares.values()), Decimal(0)),
                        message=f"Redeem {len(shares)} resolved Polymarket position(s)")
        return self._gateway.submit(self._session, action)

    # -- tickloop's helper -----------------------------------------------------------------------

    def markets(self) -> Result:
        """The venue's open markets: ``[{conditionId, question, slug, negRisk, endDate,
        minimumOrderSize, tickSize, tokens: [{tokenId, outcome, price}]}]`` (not a Circuit method)."""
        try:
            return Result.ok(self._venue.api.markets())
        except Exception as exc:
            return Result.fail(f"markets: {api_error(exc)}")


__all__ = ["PolymarketApi"]
