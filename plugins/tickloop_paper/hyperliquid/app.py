"""``HyperliquidPaper``, the server app: its fresh document, the flow of ``/info`` and
``/exchange`` (one transaction, due scheduled cancels, auth, the route tables) and the paper
control endpoints."""

from __future__ import annotations

import copy
from decimal import InvalidOperation
from typing import Any

from tickloop_paper.hyperliquid import auth, routes
from tickloop_paper.hyperliquid.account import new_account
from tickloop_paper.hyperliquid.market import MIDS, UNIVERSE
from tickloop_paper.hyperliquid.matching import MAKER_FEE, TAKER_FEE, match_resting
from tickloop_paper.hyperliquid.orders import housekeeping
from tickloop_paper.hyperliquid.wire import ZERO, Call, D, SignedBody, bad_body, err, fmt, now_ms
from tickloop_paper.server import Faults, Request, Response
from tickloop_paper.state import ExchangeState


class HyperliquidPaper:
    """The paper exchange as a :class:`tickloop_paper.server.PaperServer` app."""

    state: ExchangeState
    faults: Faults

    def __init__(self, state: ExchangeState, faults: Faults | None = None) -> None:
        self.state = state
        self.faults = faults or Faults()

    @staticmethod
    def initial_state() -> dict[str, Any]:
        return {
            "version": 1,
            "universe": copy.deepcopy(UNIVERSE),
            "mids": dict(MIDS),
            "spread": "0",  # half-spread as a fraction of the mid (0: fills at the mid)
            "fees": {"taker": TAKER_FEE, "maker": MAKER_FEE},
            "next_oid": 1,
            "next_tid": 1,
            "accounts": {},  # address -> account
            "agents": {},  # agent address -> {"user", "name"}
            "nonces": {},  # signer -> the highest nonces used, ascending
            "orders": {},  # oid -> {"user", "order", "status", "statusTimestamp"}
        }

    def __call__(self, request: Request) -> Response:
        handler = routes.HTTP.get((request.method, request.path.rstrip("/") or "/"))
        if handler is None:
            return Response.text(f"{request.method} {request.path}: not found", 404)
        return handler(self, request)

    def info(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return bad_body()
        kind = body["type"]
        named = body.get("user")
        user = named.lower() if isinstance(named, str) else None
        with self.state.transaction() as doc:
            now = now_ms()
            housekeeping(doc, now)
            about_market = routes.MARKET_INFO.get(kind)
            if about_market is not None:
                return Response.json(about_market(doc, body, now))
            about_user = routes.USER_INFO.get(kind)
            if user is None or about_user is None:
                return bad_body()
            return Response.json(about_user(doc, user, body, now))

    def exchange(self, body: Any) -> Response:
        signed = SignedBody.parse(body)
        if signed is None:
            return bad_body()
        kind = signed.action["type"]
        with self.state.transaction() as doc:
            now = now_ms()
            housekeeping(doc, now)
            try:  # a refusal changes nothing but the scheduled cancels that were due
                user_action = routes.USER_ACTIONS.get(kind)
                if user_action is not None:
                    return user_action(doc, auth.user_signer(doc, signed, now), signed.action, now)
                user = auth.l1_user(doc, signed, now)
            except auth.Refused as refusal:
                return err(str(refusal))
            action = routes.ACTIONS.get(kind)
            if action is None:
                return err(f"the paper exchange does not support action type {kind!r}")
            return action(Call(doc, user, signed.action, now, self.faults))

    # -- paper control -------------------------------------------------------------------------

    def fund(self, body: Any) -> Response:
        """``POST /paper/fund``: credit perp USDC, creating the account (``master``: as its sub-account)."""
        if not isinstance(body, dict) or not isinstance(body.get("user"), str):
            return Response.json({"error": 'expected {"user": "0x...", "usdc": amount}'}, 400)
        user = body["user"].lower()
        try:
            amount = D(str(body.get("usdc", 0)))
        except InvalidOperation:
            return Response.json({"error": f"usdc {body.get('usdc')!r} is not a number"}, 400)
        if amount < 0:
            return Response.json({"error": "usdc must not be negative"}, 400)
        master = body.get("master")
        with self.state.transaction() as doc:
            account = doc["accounts"].get(user)
            created = account is None
            if created:
                account = doc["accounts"][user] = new_account(master.lower() if isinstance(master, str) else None)
            if created or not body.get("ifNew"):
                account["usdc"] = fmt(D(account["usdc"]) + amount)
            return Response.json({"status": "ok", "user": user, "usdc": account["usdc"], "created": created})

    def move_mid(self, body: Any) -> Response:
        """``POST /paper/mid``: move a coin's mid, filling or firing the open orders it crosses."""
        if not isinstance(body, dict) or not isinstance(body.get("coin"), str):
            return Response.json({"error": 'expected {"coin": "BTC", "px": price}'}, 400)
        try:
            px = D(str(body.get("px")))
        except InvalidOperation:
            px = ZERO
        if px <= 0:
            return Response.json({"error": f"px {body.get('px')!r} must be a positive number"}, 400)
        coin = body["coin"]
        with self.state.transaction() as doc:
            if coin not in doc["mids"]:
                return Response.json({"error": f"unknown coin {coin}"}, 400)
            doc["mids"][coin] = fmt(px)
            now = now_ms()
            housekeeping(doc, now)
            touched = match_resting(doc, coin, now)
            return Response.json({"status": "ok", "coin": coin, "px": doc["mids"][coin], "filled": touched})
