"""``PolymarketPaper``: the paper exchange's two server apps, the CLOB host and the Data API host,
over one document; each request is routed through :mod:`.routes`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from tickloop_paper.polymarket import routes
from tickloop_paper.polymarket.markets import seed
from tickloop_paper.polymarket.wire import ApiError
from tickloop_paper.server import Faults, Request, Response
from tickloop_paper.state import ExchangeState


class PolymarketPaper:
    """The paper exchange's two apps: :meth:`clob` (CLOB host) and :meth:`data` (Data API host)."""

    state: ExchangeState
    faults: Faults
    clock: Callable[[], float]

    def __init__(self, state: ExchangeState, faults: Faults | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.faults = faults or Faults()
        self.clock = clock

    @staticmethod
    def initial_state() -> dict[str, Any]:
        markets, books = seed()
        return {"version": 1, "secret": secrets.token_hex(32), "markets": markets, "books": books,
                "accounts": {}, "keys": {}, "orders": {}, "trades": []}

    def clob(self, request: Request) -> Response:
        """The CLOB host."""
        try:
            handler = routes.CLOB.get((request.method, request.path))
            if handler is not None:
                return Response.json(handler(self, request))
            for (method, prefix), item in routes.CLOB_ITEMS.items():
                if request.method == method and request.path.startswith(prefix):
                    return Response.json(item(self, request, request.path[len(prefix):]))
            raise ApiError(404, f"not found: {request.method} {request.path}")
        except ApiError as exc:
            return Response.json({"error": exc.message}, exc.status)

    def data(self, request: Request) -> Response:
        """The Data API host."""
        try:
            handler = routes.DATA.get((request.method, request.path))
            if handler is None:
                raise ApiError(404, f"not found: {request.method} {request.path}")
            return Response.json(handler(self, request))
        except ApiError as exc:
            return Response.json({"error": exc.message}, exc.status)
