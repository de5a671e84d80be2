"""Venues, closers and the gateway every action goes through.

- A **venue** plugin (``tickloop_register_venues``) gives agents ``agent.platforms.<name>``,
  executes :class:`~tickloop.actions.Action` objects and reads account state.
- A **closer** plugin (``tickloop_register_closers``, named for its venue) flattens what a
  session still holds on that venue when it unwinds.
- The :class:`Gateway` is the one path from an agent's call to a venue: it asks the router
  (``tickloop_route_action``) whether to execute or suggest, stores suggestions, executes, and
  writes the resulting fills to the session's ledger. Approving a suggestion executes through
  the same :meth:`Gateway.execute`, so auto mode and an approved suggestion are one code path.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tickloop.actions import Action, Execution, Fill
from tickloop.errors import ConfigError, Problem, TickloopError
from tickloop.intents import EXECUTED, Found, Intent, NewIntent, Owner, new_client_id
from tickloop.intents import FAILED as INTENT_FAILED
from tickloop.ledger import TRADES, Book, LedgerEntry
from tickloop.portfolio import Portfolio, Position
from tickloop.results import Result

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.registry import Registry
    from tickloop.sessions import Session
    from tickloop.store import StateStore
    from tickloop.suggestions import SuggestionStore
    from tickloop.wallets import Wallet

log = logging.getLogger("tickloop")

EXECUTE = "execute"
SUGGEST = "suggest"


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
        found = self.get(*keys) if not all(options.get(key) for key in keys) else \
            Endpoints({key: str(options[key]) for key in keys}, paper=bool(options.get("paper", False)))
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
            if _takes(factory, "endpoints"):
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


class Gateway:
    """Routes, suggests, executes and books every action (see the module docstring)."""

    def __init__(self, *, hook: Any, config: Config, store: StateStore, suggestions: SuggestionStore,
                 venues: Venues, clock: Callable[[], datetime]) -> None:
        self.hook = hook
        self.config = config
        self.store = store
        self.suggestions = suggestions
        self.venues = venues
        self.clock = clock

    def with_clock(self, clock: Callable[[], datetime]) -> Gateway:
        """This gateway (same store, suggestions and venues) reading time from ``clock``."""
        return Gateway(hook=self.hook, config=self.config, store=self.store, suggestions=self.suggestions,
                       venues=self.venues, clock=clock)

    # -- the agent's path ----------------------------------------------------------------------

    def submit(self, session: Session, action: Action) -> Result:
        """Route ``action``: execute it now, or store it as a suggestion. Never raises."""
        try:
            decision = self.route(session, action)
            if decision == SUGGEST:
                suggestion = self.suggestions.create(action, at=self.clock(), expires_at=action.expires_at)
                self.notify("tickloop_suggestion_created", session=session, suggestion=suggestion)
                return Result.ok({"suggested": True, "suggestionId": suggestion.id, "details": suggestion.details()})
            execution = self.execute(session, action)
        except Exception as exc:  # a plugin or store failure is the agent's failed result, not a crash
            log.exception("%s failed", action.describe())
            return Result.fail(f"{action.venue}.{action.method} failed: {exc}")
        if not execution.ok:
            return Result.fail(execution.error or f"{action.venue}.{action.method} failed")
        return Result.ok(execution.data)

    def route(self, session: Session, action: Action) -> str:
        decision = self.hook.tickloop_route_action(session=session, action=action, mode=session.mode,
                                                   config=self.config)
        if decision not in (EXECUTE, SUGGEST):
            raise TickloopError(f"tickloop_route_action answered {decision!r}; expected 'execute' or 'suggest'")
        return decision

    def execute(self, session: Session, action: Action, *, suggestion_id: int | None = None) -> Execution:
        """Execute ``action`` on its venue and book its fills to ``session``'s ledger.

        The action is first recorded as an intent (``sending``) with the client id the venue will
        know it by and this process as its owner; the answer's fills and resting orders are booked
        with the intent's end in one transaction. ``suggestion_id``: the suggestion it executes.
        """
        venue = self.venues.get(action.venue)
        if venue is None:
            return Execution.failed(f"no {action.venue} venue is installed in this runtime"
                                    f" (installed: {', '.join(self.venues.names()) or 'none'})")
        wallet = self.wallet(action.wallet or session.wallet)
        prepare = getattr(venue, "prepare", None)
        client_id = prepare(action, wallet) if prepare is not None else new_client_id()
        if isinstance(client_id, Execution):  # refused before anything was sent
            self.notify("tickloop_action_executed", session=session, action=action, execution=client_id)
            return client_id
        intent = self.store.begin_intent(NewIntent(
            session_id=session.id, wallet=action.wallet or session.wallet, venue=action.venue, action=action,
            client_id=client_id, owner=str(Owner.current()), at=self.clock(), suggestion_id=suggestion_id))
        try:
            execution = _send(venue, action, wallet, client_id)
        except Exception as exc:  # a venue bug: whether it sent is unknown, so ask it once by client id
            log.exception("%s failed", action.describe())
            execution = self._after_failure(venue, intent, wallet, exc)
        self.settle(intent, execution)
        self.notify("tickloop_action_executed", session=session, action=action, execution=execution)
        return execution

    def settle(self, intent: Intent, execution: Execution) -> bool:
        """Book ``execution`` (the venue's answer for ``intent``) and end the intent, in one
        transaction; False (nothing booked) when another process settled it first."""
        session = self.store.get_session(intent.session_id)
        at = self.clock()
        entries = [LedgerEntry.from_fill(session.id, session.wallet, fill, at=at) for fill in execution.fills]
        orders = [(intent.venue, order_id, session.id) for order_id in execution.order_ids]
        from tickloop.jsondata import to_data

        settled = self.store.finish_intent(intent.id, status=EXECUTED if execution.ok else INTENT_FAILED, at=at,
                                           entries=entries, orders=orders,
                                           result=to_data(execution.data) if execution.ok else None,
                                           error=execution.error)
        if not settled:
            log.warning("%s was settled by another process; its answer is not booked again", intent.describe())
        return settled

    def _after_failure(self, venue: Any, intent: Intent, wallet: Wallet | None, exc: Exception) -> Execution:
        lookup = getattr(venue, "lookup", None)
        reason = f"{intent.venue} {intent.action.method} failed: {type(exc).__name__}: {exc}"
        if lookup is None:
            return Execution.failed(f"{reason}; whether it reached the venue is unknown (run tickloop reconcile)")
        try:
            found = lookup(intent.action, wallet, intent.client_id)
        except Exception as again:
            return Execution.failed(f"{reason}; asking the venue by client id failed too ({again}): run"
                                    " tickloop reconcile")
        if found.found in (Found.NOT_FOUND, Found.UNKNOWN):
            return Execution.failed(f"{reason}" + (f" ({found.reason})" if found.reason else ""))
        return found.execution

    # -- what a session holds ------------------------------------------------------------------

    def book(self, session_id: int) -> Book:
        return Book.replay(self.store.ledger([session_id]))

    def books(self, session_ids: Iterable[int]) -> dict[int, Book]:
        """The books of many sessions from one ledger read (sessions with no entries are left out)."""
        return Book.per_session(self.store.ledger(list(session_ids)))

    def wallet(self, address: str) -> Wallet | None:
        """The wallet added as ``address`` (any letter case), with its key source; None when it
        was never added."""
        return self.store.get_wallet(address)

    def wallet_sessions(self, address: str) -> list[Session]:
        """Every session on the wallet ``address``, in any state, ordered by id: the sessions that
        share its accounts on the venues."""
        return self.store.list_sessions(wallet=address)

    def placed_orders(self, session_id: int, venue: str) -> set[str]:
        """Ids of the orders ``session_id`` left resting on ``venue`` (recorded from
        :attr:`Execution.order_ids`, whether or not they are open still)."""
        return {str(order_id) for _, order_id in self.store.session_orders(session_id, venue)}

    def booked_orders(self, session_ids: Sequence[int], venue: str) -> dict[str, Decimal]:
        """The orders on ``venue`` with trades in these sessions' ledgers, each with the signed
        size booked for it so far."""
        booked: dict[str, Decimal] = {}
        for entry in self.store.ledger(list(session_ids)):
            if entry.kind in TRADES and entry.venue == venue and entry.order_id:
                booked[entry.order_id] = booked.get(entry.order_id, Decimal(0)) + entry.amount
        return booked

    def record_fills(self, fills: Iterable[tuple[Session, Fill]]) -> int:
        """Book fills the venue reports later (a resting order that filled) to their sessions'
        ledgers, in one transaction, at the gateway's time; returns how many were booked."""
        at = self.clock()
        entries = [LedgerEntry.from_fill(session.id, session.wallet, fill, at=at) for session, fill in fills]
        if entries:
            self.store.record_ledger(entries)
        return len(entries)

    def marks(self, book: Book) -> dict[tuple[str, str], Decimal]:
        """Current prices of the book's open instruments from their venues (best effort)."""
        wanted: dict[str, list[tuple[str, str]]] = {}
        for h in book.open_holdings():
            if h.venue:
                wanted.setdefault(h.venue, []).append((h.network, h.asset_key))
        found: dict[tuple[str, str], Decimal] = {}
        for name, keys in wanted.items():
            venue = self.venues.get(name)
            marks = getattr(venue, "marks", None)
            if marks is None:
                continue
            try:
                found.update(marks(keys))
            except Exception as exc:  # a venue that cannot price now: last fill prices stand in
                log.warning("venue %s could not price %s: %s", name, keys, exc)
        return found

    def portfolio(self, session_id: int, *, marked: bool = True) -> Portfolio:
        book = self.book(session_id)
        return Portfolio.from_book(book, self.marks(book) if marked else None)

    def portfolios(self, session_ids: Iterable[int]) -> dict[int, Portfolio]:
        """Portfolios of many sessions from one ledger read (sessions with no entries are left out)."""
        return {session_id: Portfolio.from_book(book, self.marks(book) if book.open_holdings() else None)
                for session_id, book in self.books(session_ids).items()}

    # -- unwinding -----------------------------------------------------------------------------

    def close_positions(self, session: Session, assets: Iterable[str] | None,
                        log_line: Callable[[str, bool], None]) -> list[CloseReport]:
        """Hand what ``session`` still holds (within ``assets``) to each venue's closer."""
        portfolio = self.portfolio(session.id).select(assets)
        by_venue: dict[str, list[Position]] = {}
        for position in portfolio.positions:
            by_venue.setdefault(position.venue or "", []).append(position)
        if assets is None:
            # A session with resting orders but no position still needs its closer: to cancel them.
            for venue, _ in self.store.session_orders(session.id):
                if venue not in by_venue and self.venues.closer(venue) is not None:
                    by_venue[venue] = []
        reports = []
        for venue, positions in sorted(by_venue.items()):
            try:
                closer = self.venues.closer(venue)
            except Exception as exc:  # a closer that cannot be built: its positions are residue
                log.exception("building the closer for %s failed", venue)
                closer, failure = None, f"the {venue} closer could not start: {exc}"
            else:
                failure = f"no closer is installed for venue {venue!r}"
            if closer is None:
                residue = tuple(Residue(venue, p.assetKey, p.coin, p.size, failure) for p in positions)
                report = CloseReport(venue, residue=residue)
            else:
                try:
                    report = closer.close(session, positions, self, lambda text: log_line(text, False))
                except Exception as exc:
                    log.exception("closer %s failed", venue)
                    residue = tuple(Residue(venue, p.assetKey, p.coin, p.size, f"the closer failed: {exc}")
                                    for p in positions)
                    report = CloseReport(venue, residue=residue)
            for item in report.residue:
                log_line(item.describe(), True)
            if report.suggested:
                log_line(f"{venue}: closing waits for approval of suggestion(s) "
                         + ", ".join(str(i) for i in report.suggested), False)
            reports.append(report)
        return reports

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a hook; a plugin that fails is logged, never fatal."""
        try:
            getattr(self.hook, hook)(**kwargs)
        except Exception:
            log.exception("a plugin's %s failed; the runtime goes on", hook)


def _takes(function: Callable[..., Any], parameter: str) -> bool:
    """Whether ``function`` has a parameter named ``parameter``: an optional argument a plugin's
    venue may or may not take."""
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


_ACCEPTS_CLIENT_ID: dict[type, bool] = {}


def _send(venue: Any, action: Action, wallet: Wallet | None, client_id: str) -> Execution:
    """``venue.execute`` with the client id, when its ``execute`` takes one."""
    kind = type(venue)
    if kind not in _ACCEPTS_CLIENT_ID:
        _ACCEPTS_CLIENT_ID[kind] = _takes(venue.execute, "client_id")
    if _ACCEPTS_CLIENT_ID[kind]:
        return venue.execute(action, wallet, client_id=client_id)
    return venue.execute(action, wallet)


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
