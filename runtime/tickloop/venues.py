"""Venues and closers: what their plugins provide, and the venues of one process.

- A **venue** plugin (``tickloop_register_venues``) gives agents ``agent.platforms.<name>``,
  executes :class:`~tickloop.actions.Action` objects and reads account state. Where it connects
  by default, when ``[venues.NAME]`` names no URL, a plugin supplies (``tickloop_venue_endpoints``:
  :class:`Endpoints`, asked through :class:`DefaultEndpoints`).
- A **closer** plugin (``tickloop_register_closers``, named for its venue) flattens what a
  session still holds on that venue when it unwinds, and reports the rest (:class:`CloseReport`).
- :class:`Venues` builds each venue once per process. Every action reaches a venue through the
  gateway (:mod:`tickloop.gateway`), which is also what venues and closers read and book through.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tickloop.actions import Action, Execution
from tickloop.errors import ConfigError, Problem, TickloopError
from tickloop.ledger import Book
from tickloop.portfolio import Position
from tickloop.results import Result

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.gateway import Gateway
    from tickloop.registry import Registry
    from tickloop.sessions import Session
    from tickloop.store import StateStore
    from tickloop.wallets import Wallet

log = logging.getLogger("tickloop")


def __getattr__(name: str) -> Any:
    # Gateway's import path before it had a module of its own (imported on use: it imports this one).
    if name == "Gateway":
        from tickloop.gateway import Gateway

        return Gateway
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Venue(Protocol):
    """What a venue plugin's factory returns: ``factory(config)``, or ``factory(config,
    endpoints=...)`` with a :class:`DefaultEndpoints` when it takes ``endpoints`` (where to
    connect when ``[venues.NAME]`` names no URL).

    Optional methods (a venue without them is simply not asked): ``marks(keys)`` → current
    prices by ``(network, asset_key)``; ``balance(wallet, network, asset_key)`` → a real
    wallet's balance in raw units, or None when the venue does not hold that asset (``wallet``
    is the :class:`tickloop.wallets.Wallet`, so a venue whose balances need a signed request
    has the key source); ``account(address)`` → ``{"accountValue", "totalMarginUsed"}``
    (strings) or None; ``close()``.

    For crash recovery and reconciliation (:mod:`tickloop.intents`, :mod:`tickloop.reconcile`):
    ``prepare(action, wallet)`` → the client id to send the action with (a venue that signs an
    order whose id is its hash signs it here and keeps it for ``execute``), or a failed
    :class:`Execution` when it cannot be sent; ``lookup(action, wallet, client_id)`` →
    :class:`tickloop.intents.Lookup`, what the venue knows of that client id (raise when the
    venue cannot be reached); ``account_view(wallet)`` → :class:`tickloop.reconcile.AccountView`
    (the account's positions and open orders); ``offset_action(session, position)`` → an
    :class:`Action` that trades ``position`` (a :class:`Fill`: signed size held) away at market,
    ValueError when it cannot; ``cancel_action(session, order)`` → an :class:`Action` that
    cancels a :class:`tickloop.reconcile.OpenOrder`.
    """

    name: str

    def agent_api(self, session: Session, gateway: Gateway) -> Any:
        """The object agents see as ``agent.platforms.<name>`` for one run of ``session``.

        Its mutating methods build an :class:`Action` and return ``gateway.submit(session,
        action)``; its reading methods answer directly. Every method returns a
        :class:`tickloop.results.Result` and never raises into agent code.
        """

    def execute(self, action: Action, wallet: Wallet | None, client_id: str | None = None) -> Execution:
        """Perform ``action`` for ``wallet`` (None: the wallet was never added, so there is no
        key); a refusal or failure is an :class:`Execution` with ``error``, never an exception.

        ``client_id`` is the id the gateway recorded before calling (from ``prepare``, else a
        fresh ``0x`` + 32 hex digits): send the order under it (Hyperliquid's ``cloid``), so that
        ``lookup`` can find it after a crash. A venue whose ``execute`` takes no ``client_id``
        is called without it.
        """


@attrs.frozen
class Residue:
    """Something a closer could not close, and why."""

    venue: str
    asset_key: str
    coin: str
    size: str
    reason: str

    def describe(self) -> str:
        return f"{self.venue} {self.coin} size {self.size} left open: {self.reason}"


@attrs.frozen
class CloseReport:
    """What a closer did for one session on one venue."""

    venue: str
    closed: tuple[str, ...] = ()  # asset keys now flat
    residue: tuple[Residue, ...] = ()
    suggested: tuple[int, ...] = ()  # suggestion ids (manual mode: waiting for approval)
    notes: tuple[str, ...] = ()


def suggestion_id(result: Result) -> int | None:
    """The id of the suggestion a :meth:`Gateway.submit` answer stored (manual mode), or None
    when the action was executed or failed."""
    data = result.data if result.success else None
    if data is not None and hasattr(data, "get") and data.get("suggested"):
        return int(data["suggestionId"])
    return None


class Closer(Protocol):
    """What a closer plugin's factory (``factory(config)``) returns."""

    def close(self, session: Session, positions: Sequence[Position], gateway: Gateway,
              log: Callable[[str], None]) -> CloseReport:
        """Cancel the session's open orders on this venue and close ``positions`` (the session's
        share, from its ledger) through ``gateway.submit``; report what is left."""


@attrs.frozen
class Endpoints:
    """Where a venue connects when ``[venues.NAME]`` names no URL, as a plugin supplies it
    (``tickloop_venue_endpoints``)."""

    urls: Mapping[str, str]  # by the venue's option key: {"base_url": "http://127.0.0.1:4100"}
    paper: bool = False  # paper exchanges: paper wallets may trade there


class DefaultEndpoints:
    """A venue's way to its default endpoints: asks the plugins (``tickloop_venue_endpoints``)
    when the venue asks, on its first request, so a venue that is built but never used starts
    nothing.

    A venue factory that takes an ``endpoints`` parameter is given one by :class:`Venues`.
    """

    def __init__(self, hook: Any, config: Config, venue: str) -> None:
        self._hook = hook  # the plugin manager's hook; None: no plugin supplies endpoints
        self._config = config
        self.venue = venue

    def get(self, *keys: str) -> Endpoints:
        """The endpoints a plugin supplies for this venue, with a URL for each of ``keys``; a
        :class:`ConfigError` naming the first key none supplies."""
        found = self._hook.tickloop_venue_endpoints(venue=self.venue, config=self._config) if self._hook else None
        if found is not None and not isinstance(found, Endpoints):
            raise TickloopError(f"tickloop_venue_endpoints answered {found!r} for {self.venue};"
                                " expected tickloop.venues.Endpoints or None")
        for key in keys:
            if found is None or not found.urls.get(key):
                raise ConfigError(Problem(self._config.source, f"venues.{self.venue}.{key}",
                                          f"not set, and no plugin supplies a default {key} for {self.venue} (the"
                                          " paper plugin supplies the paper exchanges' URLs: is it blocked?)"))
        assert found is not None
        return found

    def resolve(self, options: Mapping[str, Any], *keys: str) -> Endpoints:
        """Where the venue connects: ``keys`` as its ``[venues.NAME]`` table (``options``) sets
        them, a real exchange unless ``paper = true``; else as a plugin supplies them (:meth:`get`).
        URLs come without a trailing slash."""
        if all(options.get(key) for key in keys):
            found = Endpoints({key: str(options[key]) for key in keys}, paper=bool(options.get("paper", False)))
        else:
            found = self.get(*keys)
        return Endpoints({key: url.rstrip("/") for key, url in found.urls.items()}, paper=found.paper)


class Venues:
    """The venues of one process, built on first use from the registry."""

    def __init__(self, registry: Registry, config: Config, *, hook: Any) -> None:
        self._registry = registry
        self._config = config
        self._hook = hook
        self._built: dict[str, Any] = {}

    def names(self) -> list[str]:
        return self._registry.names("venue")

    def get(self, name: str) -> Any | None:
        if name not in self._built:
            if name not in self._registry.names("venue"):
                return None
            factory = self._registry.get("venue", name, key=f"venues.{name}").factory
            if takes(factory, "endpoints"):
                self._built[name] = factory(self._config, endpoints=DefaultEndpoints(self._hook, self._config, name))
            else:
                self._built[name] = factory(self._config)
        return self._built[name]

    def closer(self, name: str) -> Any | None:
        if name not in self._registry.names("closer"):
            return None
        return self._registry.get("closer", name, key=f"closers.{name}").factory(self._config)

    def close(self) -> None:
        for venue in self._built.values():
            closing = getattr(venue, "close", None)
            if closing is not None:
                try:
                    closing()
                except Exception:
                    log.exception("closing venue %s failed", getattr(venue, "name", venue))
        self._built.clear()


def takes(function: Callable[..., Any], parameter: str) -> bool:
    """Whether ``function`` has a parameter named ``parameter``: an optional argument a plugin's
    venue may or may not take."""
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def margin_use(store: StateStore, venues: Venues, wallet: str, sessions: Sequence[Session]) -> Mapping[str, Any] | None:
    """Combined margin use of the open sessions on ``wallet``'s perp account (None: no perps).

    Asks the venue that holds the perps for the account's margin (``account(wallet)``); when it
    cannot tell, estimates it from the ledgers at 1x: total notional over total collateral.
    """
    notional = Decimal(0)
    collateral = Decimal(0)
    perp_venues: set[str] = set()
    for book in Book.per_session(store.ledger([s.id for s in sessions])).values():
        for h in book.open_holdings():
            if h.contract == "perp":
                notional += abs(h.size) * (h.last_price or Decimal(0))
                if h.venue:
                    perp_venues.add(h.venue)
        collateral += sum((c.amount for c in book.cash.values()), Decimal(0))
    if notional == 0:
        return None
    reported = None
    for name in sorted(perp_venues):
        account = getattr(venues.get(name), "account", None)
        if account is None:
            continue
        try:
            reported = account(wallet)
        except Exception:
            reported = None
        if reported and Decimal(reported["accountValue"]) > 0:
            break
        reported = None
    if reported:
        used, value = Decimal(reported["totalMarginUsed"]), Decimal(reported["accountValue"])
        source = "venue"
    else:
        used, value, source = notional, collateral, "ledger (notional / collateral, at 1x)"
    ratio = used / value if value > 0 else Decimal("Infinity")
    return {"margin_used": used, "account_value": value, "ratio": ratio, "source": source}
