"""The state store interface: sessions, their audit trail, runs and run logs, wallets, the ledger,
intents and holds.

A store is a plugin (``tickloop_register_state_stores``), chosen by the scheme of
``[state] url``. The built-in ``sqlite`` store keeps everything in one SQLite file (WAL); a
PostgreSQL store implements the same interface for many nodes. Every method that writes
commits before it returns: what it returned is durable.

A store plugin implements :class:`StateStore`; its users ask for the narrow protocol they need:

==================  ===================================================  ============================================
protocol            holds                                                used by (modules of ``tickloop``)
==================  ===================================================  ============================================
``SessionStore``    sessions and their audit trail (transitions)         ``runtime``, ``decisions``, ``scheduler``,
                                                                         ``serving``, ``gateway``, ``reconcile``,
                                                                         ``recovery``, ``safekeeping``
``RunStore``        runs and their log lines: batched starts and         ``scheduler`` (writes), ``serving``
                    finishes, the crash journal, reads                   (journal, recovery), ``runtime`` (reads)
``WalletStore``     wallets, their paper funds, their sessions'          ``accounts``, ``runtime``, ``gateway``,
                    allocations                                          ``reconcile``, ``recovery``, ``runner``
``LedgerStore``     ledger entries (allocations, fills, adjustments),    ``gateway``, ``venues`` (margin),
                    resting orders, the accounts sessions traded on      ``reconcile``, ``adjustments``
``IntentStore``     intents: actions recorded before they are sent       ``gateway``, ``recovery``, ``reconcile``
``HoldStore``       reconciliation's holds on sessions                   ``reconcile``, ``safekeeping``,
                                                                         ``scheduler``, ``runtime``
``ChangeFeed``      what changed since the scheduler last looked, and    ``scheduler``, ``serving`` (``listen``)
                    a wake-up when another process changes a session
``StoreHandle``     the open store: its URL, ownership by the one        ``runtime``, ``serving`` (ownership),
                    ``serve`` process, closing                           ``bootstrap``, ``runner`` (closing)
==================  ===================================================  ============================================

Ids (sessions, runs, suggestions) are positive 64-bit integers, at most :data:`MAX_ID`; a store
answers a lookup of any other integer as of an id that does not exist (``NotFoundError``, or
nothing found), never with a driver's overflow. Text it stores is made storable with
:func:`tickloop.text.storable` (see that module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs

from tickloop.intents import Intent, NewIntent
from tickloop.ledger import LedgerEntry
from tickloop.runs import LogLine, Run
from tickloop.schedule import Schedule
from tickloop.sessions import Hold, Session, State, Transition
from tickloop.wallets import Wallet

UNCHANGED: Any = attrs.NOTHING  # "leave this column as it is"

#: The largest id: SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit.
MAX_ID = 2**63 - 1


@attrs.frozen
class NewSession:
    """What starting a session writes: created and moved to running in one transaction."""

    agent: str
    agent_ref: str
    wallet: str
    mode: str
    schedule: Schedule
    settings: dict[str, Any]
    allocation: str | None
    at: datetime
    next_run_at: datetime
    reason: str = ""
    allocation_network: str | None = None
    allocation_asset: str | None = None
    allocation_symbol: str | None = None
    allocation_decimals: int | None = None
    #: the wallet's balance of the allocation asset (raw units); None: not checked. The store
    #: refuses the session when the open sessions' allocations plus this one exceed it.
    wallet_balance: int | None = None


@attrs.frozen
class RunStart:
    """A run about to invoke agent code; recorded as ``running`` before it starts."""

    session_id: int
    kind: str
    scheduled_at: datetime
    started_at: datetime


@attrs.frozen
class RunFinish:
    """A run's outcome plus the session's schedule after it, committed together."""

    run_id: int
    session_id: int
    status: str
    finished_at: datetime
    error: str | None = None
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()
    # The session's schedule after this run; None leaves next_run_at empty (e.g. an unwind).
    next_run_at: datetime | None = None
    last_scheduled_at: datetime | None = None


class SessionStore(Protocol):
    """Sessions and their audit trail."""

    def create_session(self, new: NewSession) -> tuple[Session, Transition]:
        """Insert a session and move it ``created -> running`` (one ``start`` transition row) and
        book its allocation in the ledger, in one transaction.

        Refused (:class:`tickloop.errors.TickloopError`, nothing written) when the same agent has
        an open session on the wallet, or the allocation exceeds the wallet's free balance.
        """

    def get_session(self, session_id: int) -> Session:
        """The session; :class:`tickloop.errors.NotFoundError` if there is none."""

    def list_sessions(self, *, states: Iterable[State] | None = None, agent: str | None = None,
                      wallet: str | None = None) -> list[Session]:
        """Sessions ordered by id, filtered by state, agent name and wallet."""

    def transition(self, session_id: int, action: str, *, at: datetime, reason: str = "",
                   next_run_at: datetime | None = UNCHANGED,
                   unwind_assets: Sequence[str] | None = UNCHANGED) -> tuple[Session, Transition]:
        """Apply ``action`` atomically (compare-and-set on the state) and append to the audit trail.

        Refused transitions raise :class:`tickloop.errors.TransitionError` and change nothing.
        ``next_run_at`` (when given) is written in the same transaction; so is the unwind stage
        (``"agent"`` on unwind, cleared on leaving ``unwinding``) and ``unwind_assets``.
        """

    def update_unwind(self, session_id: int, *, stage: str, next_run_at: datetime | None) -> Session | None:
        """Set the stage and due time of an unwinding session (None if it is not unwinding)."""

    def transitions(self, session_id: int) -> list[Transition]:
        """The session's audit trail, oldest first."""


class RunStore(Protocol):
    """Runs and their log lines."""

    def start_runs(self, starts: Sequence[RunStart]) -> list[Run]:
        """Record runs as ``running`` in one transaction; returns them with their ids, in order."""

    def finish_runs(self, finishes: Sequence[RunFinish]) -> None:
        """In one transaction: each run's outcome and log lines, and its session's schedule
        (``next_run_at``, ``last_scheduled_at``, ``last_finished_at = finished_at``)."""

    def record_finished(self, finish: RunFinish) -> None:
        """Make a finished run survive a crash now, ahead of the :meth:`finish_runs` that commits
        it with its group (the owner calls it as each run finishes; :meth:`recover_interrupted`
        then applies it rather than marking the run interrupted). A store whose commits are
        cheap enough may do nothing here and rely on :meth:`finish_runs`."""

    def get_run(self, run_id: int) -> Run:
        """The run with its log lines; :class:`tickloop.errors.NotFoundError` if there is none."""

    def runs(self, *, session_id: int | None = None, status: str | None = None, limit: int = 100,
             logs: bool = False) -> list[Run]:
        """Runs, newest first; with ``logs=True`` each carries its log lines."""

    def logs(self, *, session_id: int | None = None, run_id: int | None = None, limit: int = 1000,
             after: int | None = None) -> list[tuple[int, LogLine]]:
        """``(run_id, line)`` pairs in the order they were logged: the last ``limit``, or with
        ``after`` (a line's id) the first ``limit`` after that line."""

    def recover_interrupted(self, *, at: datetime) -> list[Run]:
        """Finish the runs still ``running`` whose process died: with the outcome recorded by
        :meth:`record_finished` when there is one, else ``failed`` with an "interrupted" error;
        returns them. Called by the owner at start-up."""


class WalletStore(Protocol):
    """Wallets, their paper funds and what their open sessions have allocated."""

    def add_wallet(self, wallet: Wallet) -> Wallet:
        """Store a wallet; :class:`tickloop.errors.TickloopError` if its address is known."""

    def get_wallet(self, address: str) -> Wallet | None:
        """The wallet with this address (any letter case), or None."""

    def list_wallets(self) -> list[Wallet]:
        """Every wallet, in the order added."""

    def fund_wallet(self, address: str, network: str, asset: str, amount: int, *,
                    only_if_unfunded: bool = False) -> int:
        """Add ``amount`` raw units of an asset to a wallet's funds (with ``only_if_unfunded``,
        only when it has none of it yet: funding on first use, once even when processes race);
        returns the balance."""

    def wallet_funds(self, address: str) -> dict[tuple[str, str], int]:
        """A wallet's funds by ``(network, asset)`` (asset lower case)."""

    def allocated(self, address: str) -> dict[tuple[str, str], int]:
        """The allocations of the wallet's open sessions, summed by ``(network, asset)``."""


class LedgerStore(Protocol):
    """The per-session ledger (allocations, fills, adjustments) and the orders sessions placed."""

    def record_ledger(self, entries: Sequence[LedgerEntry], *,
                      orders: Sequence[tuple[str, str, int]] = ()) -> None:
        """Append ledger entries and record resting orders ``(venue, order_id, session_id)``."""

    def ledger(self, session_ids: Sequence[int]) -> list[LedgerEntry]:
        """The ledger entries of these sessions, in the order recorded."""

    def session_orders(self, session_id: int, venue: str | None = None) -> list[tuple[str, str]]:
        """``(venue, order_id)`` of the orders a session placed."""

    def trading_accounts(self) -> set[tuple[str, str]]:
        """``(wallet, venue)`` of every account sessions traded on: wallets with ledger entries
        of a venue, orders or intents (what reconciliation compares)."""


class IntentStore(Protocol):
    """Intents: every action recorded before it is sent, and settled once."""

    def begin_intent(self, new: NewIntent) -> Intent:
        """Record an action about to be sent (status ``sending``); committed before it returns."""

    def finish_intent(self, intent_id: int, *, status: str, at: datetime, entries: Sequence[LedgerEntry] = (),
                      orders: Sequence[tuple[str, str, int]] = (), result: Any = None,
                      error: str | None = None) -> bool:
        """In one transaction: move the intent ``sending`` → ``status`` (compare-and-set) and book
        ``entries`` and resting ``orders`` as :meth:`LedgerStore.record_ledger` does. Returns
        False, writing nothing, when the intent was no longer ``sending`` (another process
        settled it)."""

    def intents(self, *, status: str | None = None, session_id: int | None = None,
                suggestion_id: int | None = None, wallet: str | None = None, venue: str | None = None,
                after_id: int = 0, newest: bool = False, limit: int = 1000) -> list[Intent]:
        """Intents, oldest first (``newest``: newest first), filtered (``after_id``: only newer
        ones)."""


class HoldStore(Protocol):
    """Reconciliation's holds: sessions the scheduler does not run until they are released."""

    def hold(self, session_id: int, *, reason: str, at: datetime) -> Hold:
        """Hold the session (or update the reason of its hold; ``since`` is kept). Changes the
        sessions revision, so the scheduler stops running it."""

    def release(self, session_id: int) -> bool:
        """Release the session's hold; False when it was not held."""

    def holds(self) -> dict[int, Hold]:
        """Every hold, by session id."""


class ChangeFeed(Protocol):
    """What changed since the scheduler last looked, read cheaply on every pass of its loop."""

    def sessions_revision(self) -> int:
        """A number that changes whenever any session is created or changes state (any process)."""

    def ledger_sessions(self, after_id: int = 0) -> tuple[int, set[int]]:
        """The sessions with ledger entries recorded after entry ``after_id``, and the id of the
        last entry (the ledger is append-only: the scheduler keeps a set of sessions with
        entries up to date from this, and reads no ledger for the others)."""

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from another thread) whenever another process changed a session."""


class StoreHandle(Protocol):
    """The open store itself: where it is, who owns it, closing it."""

    url: str

    def acquire_owner(self) -> None:
        """Become the one ``serve`` process of this store, until :meth:`close` or process exit.

        Raises :class:`tickloop.errors.StoreLockedError` naming the owner when another has it.
        """

    def close(self) -> None:
        """Release the connection, the ownership and the listener."""


class StateStore(SessionStore, RunStore, WalletStore, LedgerStore, IntentStore, HoldStore, ChangeFeed, StoreHandle,
                 Protocol):
    """What a state store plugin provides: every protocol above."""
