"""The gateway every action goes through, and what venues and closers read and book through.

The :class:`Gateway` is the one path from an agent's call to a venue: it asks the router
(``tickloop_route_action``) whether to execute or suggest, stores suggestions, executes, and
writes the resulting fills to the session's ledger. Approving a suggestion executes through the
same :meth:`Gateway.execute`, so auto mode and an approved suggestion are one code path. Venues
and closers never reach the state store: the gateway answers what they need (the session's book
and wallet, the sessions sharing an account, the orders a session placed and booked) and books
the fills they find later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tickloop.actions import Action, Execution, Fill
from tickloop.errors import TickloopError
from tickloop.intents import EXECUTED, Found, Intent, NewIntent, Owner, new_client_id
from tickloop.intents import FAILED as INTENT_FAILED
from tickloop.ledger import TRADES, Book, LedgerEntry
from tickloop.portfolio import Portfolio, Position
from tickloop.results import Result
from tickloop.venues import CloseReport, Residue, takes

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.sessions import Session
    from tickloop.store import StateStore
    from tickloop.suggestions import SuggestionStore
    from tickloop.venues import Venues
    from tickloop.wallets import Wallet

log = logging.getLogger("tickloop")

EXECUTE = "execute"
SUGGEST = "suggest"


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


_ACCEPTS_CLIENT_ID: dict[type, bool] = {}


def _send(venue: Any, action: Action, wallet: Wallet | None, client_id: str) -> Execution:
    """``venue.execute`` with the client id, when its ``execute`` takes one."""
    kind = type(venue)
    if kind not in _ACCEPTS_CLIENT_ID:
        _ACCEPTS_CLIENT_ID[kind] = takes(venue.execute, "client_id")
    if _ACCEPTS_CLIENT_ID[kind]:
        return venue.execute(action, wallet, client_id=client_id)
    return venue.execute(action, wallet)
