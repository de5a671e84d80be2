"""The runtime: sessions, their schedule, and the loop that runs what is due.

Time is injected: ``tick(now)`` runs everything due at ``now`` with the clock reading ``now``
meanwhile, so schedule behaviour is tested exactly and without sleeping. ``serve()`` is the same
machinery on the real clock: it sleeps until the next due time and wakes early when a run
completes or another process changes a session.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import queue
import re
import threading
from concurrent import futures
from pathlib import Path
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping

import attrs

from tickloop import bootstrap, schedule as schedules
from tickloop.agents import Agent, AgentLoader
from tickloop.config import Config
from tickloop.errors import ConfigError, NotFoundError, Problem, SettingsError, TickloopError
from tickloop.runner import RunEnvironment, RunJob, RunOutcome
from tickloop.intents import Owner
from tickloop.memory import Memory, MemoryBackend, session_scope
from tickloop.pluginmanager import PluginManager
from tickloop.registry import Registry
from tickloop.runs import FAILED, SKIPPED, LogLine, Run
from tickloop.safekeeping import Safekeeping
from tickloop.portfolio import Portfolio
from tickloop.ranges import is_raw_amount
from tickloop.recovery import recover
from tickloop.sessions import Session, State, Transition
from tickloop.suggestions import APPROVED, EXECUTED, EXPIRED, FAILED as SUGGESTION_FAILED, PENDING, REJECTED
from tickloop.suggestions import Suggestion, refusal
from tickloop.venues import Gateway, margin_use
from tickloop.views import SessionView, SharedMargin, WalletAsset, WalletView
from tickloop.wallets import PAPER, Wallet, address_from_env, address_from_keystore, asset_info, new_paper_key
from tickloop.wallets import DEFAULT_PASSWORD_ENV, ENV, KEYSTORE
from tickloop.store import UNCHANGED, NewSession, RunFinish, RunStart, StateStore

UTC = timezone.utc
# How long serve() sleeps at most when nothing is scheduled; a change or a completion wakes it.
IDLE_WAIT = 3600.0
# Most runs serve() dispatches in one loop iteration (their starts are one transaction, their
# finishes another). More are due when many sessions share a due time (sessions started
# together, fixed schedules); dispatching them in groups bounds the lateness a group adds to the
# runs behind it, and gives each group its own completion time, so rolling sessions started in
# one burst spread out instead of staying due at the same instant forever.
SERVE_BATCH = 128
# How long an unwinding session waits before its closers run again when they could not run.
CLOSE_RETRY = timedelta(seconds=60)
# How long a stopping serve() waits for runs in flight before the executor abandons them.
SHUTDOWN_GRACE = 10.0
log = logging.getLogger("tickloop")
_ETH_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SOL_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
OPEN_STATES = (State.CREATED, State.RUNNING, State.PAUSED, State.UNWINDING)

Pending = tuple[Run, Session, "Future[RunOutcome]"]
#: a finished run: its record, session, outcome and what the store is to commit for it
Completed = tuple[Run, Session, RunOutcome, RunFinish]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise TickloopError(f"times must be timezone-aware, got {value.isoformat()} without a timezone")
    return value.astimezone(UTC)


def _finished(run: Run, finished_at: datetime, outcome: RunOutcome) -> Run:
    """``run`` with its outcome. Built directly: attrs.evolve costs twice as much, which shows at
    thousands of runs a second."""
    return Run(id=run.id, session_id=run.session_id, kind=run.kind, scheduled_at=run.scheduled_at,
               started_at=run.started_at, finished_at=finished_at, status=outcome.status, error=outcome.error,
               traceback=outcome.traceback, logs=outcome.logs)


def _rescheduled(s: Session, next_run_at: datetime | None, scheduled_at: datetime, finished_at: datetime) -> Session:
    """``s`` after a run scheduled at ``scheduled_at`` finished at ``finished_at``."""
    return Session(id=s.id, agent=s.agent, agent_ref=s.agent_ref, wallet=s.wallet, mode=s.mode, state=s.state,
                   schedule=s.schedule, settings=s.settings, allocation=s.allocation, created_at=s.created_at,
                   next_run_at=next_run_at, last_scheduled_at=scheduled_at, last_finished_at=finished_at,
                   allocation_network=s.allocation_network, allocation_asset=s.allocation_asset)


def _outcome(run: Run, future: Future[RunOutcome]) -> RunOutcome:
    """The executor's outcome; an executor that broke becomes a failed run, never a crashed loop."""
    try:
        return future.result()
    except Exception as exc:
        return RunOutcome(run.id, FAILED, error=f"executor failed: {type(exc).__name__}: {exc}")


class Runtime(Safekeeping):
    """Runs agents' sessions on their schedules. Use :meth:`from_config` to build one."""

    def __init__(self, *, config: Config, pm: PluginManager, registry: Registry, store: StateStore,
                 memory: MemoryBackend, agents: AgentLoader, environment: RunEnvironment, executor: Any,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.pm = pm
        self.hook = pm.hook
        self.registry = registry
        self.store = store
        self.memory_backend = memory
        self.agents = agents
        self.environment = environment
        self.executor = executor
        self._clock = clock or (lambda: datetime.now(UTC))
        # An injected clock (tests, the demo) also drives the agents' clocks during unwinds.
        self._injected_clock = clock is not None
        self._pinned: datetime | None = None
        # The schedule: due times of open sessions that are not in flight, in a heap with lazy
        # deletion (an entry is live only while _due[session] is that very datetime).
        self._open: dict[int, Session] = {}
        self._due: dict[int, datetime] = {}
        self._heap: list[tuple[float, int, datetime]] = []
        self._inflight: set[int] = set()
        self._revision: int | None = None
        # Sessions with ledger entries (allocations, fills), up to ledger entry _ledger_mark: the
        # portfolio snapshot of a run reads the ledger only for these.
        self._ledger_mark = 0
        self._with_ledger: set[int] = set()
        self._wake = threading.Event()
        self._serving = False
        self._closed = False

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None,
                    overrides: Mapping[str, Any] | None = None, plugins: Iterable[Any] = (),
                    clock: Callable[[], datetime] | None = None) -> Runtime:
        """Build a runtime from ``tickloop.toml`` (``path``, or the one in ``home``), ``TICKLOOP_*``
        variables and ``overrides``; ``plugins`` are extra plugin objects to register."""
        parts = bootstrap.build(Config.load(path, home=home, overrides=overrides), plugins=plugins)
        return cls(config=parts.config, pm=parts.pm, registry=parts.registry, store=parts.store, memory=parts.memory,
                   agents=parts.agents, environment=parts.environment, executor=parts.executor, clock=clock)

    # -- clock ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The runtime's clock: the ``now`` of the current :meth:`tick`, else the real clock."""
        return self._pinned or self._clock()

    def _at(self, now: datetime | None) -> datetime:
        return _utc(now) if now is not None else self.now()

    # -- sessions ------------------------------------------------------------------------------

    def start_session(self, agent: str, wallet: str, *, mode: str = "auto", settings: Mapping[str, Any] | None = None,
                      allocation: int | str | None = None, now: datetime | None = None, reason: str = "") -> Session:
        """Start ``agent`` (an entry-point name or a folder path) on ``wallet``; its first run is due at once."""
        at = self._at(now)
        loaded = self.agents.load(agent)
        manifest = loaded.manifest
        if mode not in manifest.allowedExecutionModes:
            allowed = ", ".join(manifest.allowedExecutionModes)
            raise SettingsError(Problem(manifest.file, "allowedExecutionModes",
                                        f"mode {mode!r} is not allowed for agent {manifest.name!r} (allowed: {allowed})"))
        wallet = self._check_wallet(loaded, wallet)
        resolved = manifest.resolve_settings(settings or {}, source="session settings")
        raw_allocation = self._check_allocation(loaded, allocation)
        asset = manifest.startingAsset
        funding: dict[str, Any] = {}
        if asset is not None and (int(raw_allocation or 0) > 0 or asset.minimum_amount > 0):
            # A balance is needed: the wallet must be known, and the allocation (the minimum
            # unless given) must fit in its free balance, which the store checks atomically.
            raw_allocation = raw_allocation or asset.minimumAmount
            symbol, decimals = asset_info(asset.address, asset.network)
            funding = {"allocation_network": asset.network, "allocation_asset": asset.address,
                       "allocation_symbol": symbol, "allocation_decimals": decimals,
                       "wallet_balance": self._wallet_balance(loaded, wallet, asset.network, asset.address)}
        elif raw_allocation is not None and int(raw_allocation) > 0:
            raise TickloopError(f"agent {manifest.name!r} declares no [startingAsset] in {manifest.file}, so it"
                                f" cannot be given an allocation ({raw_allocation})")
        session, transition = self.store.create_session(NewSession(
            agent=manifest.name, agent_ref=loaded.ref, wallet=wallet, mode=mode, schedule=manifest.schedule,
            settings=resolved, allocation=raw_allocation, at=at,
            next_run_at=schedules.first_run(manifest.schedule, at), reason=reason, **funding))
        self._changed(session, transition)
        return session

    def _wallet_balance(self, agent: Agent, address: str, network: str, asset: str) -> int:
        """The wallet's balance of the starting asset: its funds (a paper wallet is funded on
        first use) or, for a real wallet, what a venue reports."""
        wallet = self.store.get_wallet(address)
        if wallet is None:
            raise TickloopError(
                f"wallet {address} has not been added, and agent {agent.name!r} needs a balance of its starting"
                f" asset ({asset} on {network}); add it first: tickloop wallets add --paper, --key-env VAR or"
                " --keystore FILE")
        funds = self.store.wallet_funds(wallet.address).get((network, asset.lower()))
        if funds is not None:
            return funds
        if wallet.is_paper:
            return self.store.fund_wallet(wallet.address, network, asset, int(self.config.wallets.paper_funding),
                                          only_if_unfunded=True)
        for name in self.gateway.venues.names():
            balance = getattr(self.gateway.venues.get(name), "balance", None)
            found = balance(wallet, network, asset) if balance is not None else None
            if found is not None:
                return int(found)
        raise TickloopError(f"cannot tell the balance of {asset} on {network} for wallet {wallet.address}: no"
                            " installed venue reports it")

    @staticmethod
    def _check_wallet(agent: Agent, wallet: str) -> str:
        """The wallet address in its canonical form (EIP-55 checksum for EVM addresses), so one
        wallet written in two letter cases is still one wallet."""
        kind = agent.manifest.walletType
        pattern = _SOL_ADDRESS if kind == "solana" else _ETH_ADDRESS
        if not isinstance(wallet, str) or not pattern.fullmatch(wallet):
            shape = "a base58 address" if kind == "solana" else "0x followed by 40 hex digits"
            raise TickloopError(f"wallet {wallet!r} is not a well-formed {kind} address ({shape});"
                                f" agent {agent.name!r} has walletType {kind!r}")
        if kind == "solana":
            return wallet
        from eth_utils import to_checksum_address

        return to_checksum_address(wallet)

    @staticmethod
    def _check_allocation(agent: Agent, allocation: int | str | None) -> str | None:
        if allocation is None:
            return None
        text = str(allocation)
        if not is_raw_amount(text):
            raise TickloopError(f"allocation {text!r} must be a whole number of raw units of the starting asset"
                                " (0 to 2**256 - 1)")
        asset = agent.manifest.startingAsset
        if asset is not None and int(text) < asset.minimum_amount:
            raise TickloopError(f"allocation {text} is below the agent's startingAsset.minimumAmount"
                                f" {asset.minimumAmount} ({asset.address} on {asset.network})")
        return text

    def pause(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """Stop running the session's cycles; its schedule and memory are kept."""
        return self._transition(session_id, "pause", self._at(now), reason)

    def resume(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """Run again from the next scheduled point at or after ``now`` (never a catch-up run)."""
        at = self._at(now)
        session = self.store.get_session(session_id)
        anchor = session.next_run_at or at
        next_at = schedules.resume_at(session.schedule, anchor=anchor, now=at)
        return self._transition(session_id, "resume", at, reason, next_run_at=next_at)

    def stop(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """End the session without unwinding (also forces an unwind that waits for approvals to
        end); its session memory is cleared and its pending suggestions are deleted. Positions
        it still holds are left on the venues, and said so in the transition's reason."""
        left = self._left_open(session_id)
        if left:
            reason = f"{reason}; left open: {left}" if reason else f"left open: {left}"
        return self._transition(session_id, "stop", self._at(now), reason, next_run_at=None)

    def unwind(self, session_id: int, assets: Iterable[str] | None = None, now: datetime | None = None, *,
               reason: str = "") -> Session:
        """Call the agent's ``unwind`` once, then stop the session.

        The unwind runs here unless another process serves the store; then that ``serve`` runs
        it (it is told at once). An unwind interrupted by a crash runs again after restart.
        An ``assets`` entry the session holds no position in is refused (nothing changes); fills
        a dead process left unbooked are recovered first, so the closers see them.
        """
        at = self._at(now)
        self.store.get_session(session_id)
        with self._pinned_to(at if now is not None or self._injected_clock else None):
            self._after_recovery(recover(self.gateway, session_ids=[session_id]))
        if assets is not None:
            assets = list(assets)
            self._check_assets(session_id, assets)
        session = self._transition(session_id, "unwind", at, reason, next_run_at=at,
                                   unwind_assets=assets)
        if self._serving or not self._store_served_elsewhere():
            with self._pinned_to(at if now is not None or self._injected_clock else None):
                self._sync()
                self._due.pop(session_id, None)
                self._run_sessions([session], at)
            session = self.store.get_session(session_id)
        return session

    def _store_served_elsewhere(self) -> bool:
        owned = getattr(self.store, "owned_by_other_process", None)
        return bool(owned and owned())

    def _transition(self, session_id: int, action: str, at: datetime, reason: str,
                    next_run_at: datetime | None = UNCHANGED, unwind_assets: list[str] | None = UNCHANGED) -> Session:
        session, transition = self.store.transition(session_id, action, at=at, reason=reason, next_run_at=next_run_at,
                                                    unwind_assets=unwind_assets)
        self._changed(session, transition)
        return session

    def _changed(self, session: Session, transition: Transition) -> None:
        if session.state is State.STOPPED:
            self.memory_backend.clear(session_scope(session.id))
            self.gateway.suggestions.delete_pending([session.id], at=transition.at)
        if session.state in (State.RUNNING, State.UNWINDING) and session.id not in self._inflight:
            self._open[session.id] = session
            self._schedule(session.id, session.next_run_at)
        else:
            self._open.pop(session.id, None)
            self._due.pop(session.id, None)
        self._notify("tickloop_session_transitioned", session=session, transition=transition)

    def session(self, session_id: int) -> Session:
        return self.store.get_session(session_id)

    def sessions(self, *, states: Iterable[State | str] | None = None) -> list[Session]:
        return self.store.list_sessions(states=[State(s) for s in states] if states is not None else None)

    def transitions(self, session_id: int) -> list[Transition]:
        return self.store.transitions(session_id)

    def runs(self, session_id: int | None = None, *, status: str | None = None, limit: int | None = None) -> list[Run]:
        """Runs with their log lines, oldest first (the newest ``limit`` when given)."""
        found = self.store.runs(session_id=session_id, status=status, limit=limit or 1_000_000, logs=True)
        return list(reversed(found))

    def logs(self, *, session_id: int | None = None, run_id: int | None = None,
             limit: int = 1000) -> list[tuple[int, LogLine]]:
        return self.store.logs(session_id=session_id, run_id=run_id, limit=limit)

    @property
    def gateway(self) -> Gateway:
        """The path from actions to venues, with this runtime's clock."""
        return self.environment.gateway(self.now)

    def portfolio(self, session_id: int) -> Portfolio:
        """What the session holds now, from its ledger (marked at venue prices when available)."""
        self.store.get_session(session_id)
        return self.gateway.portfolio(session_id)

    # -- read models (one place for the CLI, the HTTP API and the dashboard) ---------------------

    def agent(self, ref: str) -> Agent:
        """The agent ``ref`` names (an installed agent's name or a folder path), loaded and checked."""
        return self.agents.load(ref)

    def isolation(self) -> str | None:
        """How the executor isolates agent code, in one line (None: the executor does not say)."""
        describe = getattr(self.executor, "isolation", None)
        return describe() if describe is not None else None

    def observe(self, plugin: Any) -> None:
        """Register ``plugin``'s ``tickloop_*`` hook implementations (lifecycle hooks such as
        ``tickloop_run_finished``), as ``serve``'s console printer does."""
        self.pm.register(plugin)

    def claim(self) -> None:
        """Own the home's store as ``serve`` does, for a foreground ``run``: refused while a serve
        (which would run the same sessions) owns it."""
        self.store.acquire_owner()

    def upcoming(self, session_id: int, count: int = 5) -> list[datetime]:
        """The session's next scheduled points (only the next one for a rolling schedule, whose
        later runs depend on when runs finish); none unless it is running."""
        session = self.store.get_session(session_id)
        if session.state is not State.RUNNING or session.next_run_at is None:
            return []
        later = [] if session.schedule.kind == "rolling" else \
            schedules.upcoming(session.schedule, after=session.next_run_at, count=count - 1)
        return [session.next_run_at, *later]

    def shared_margin(self, session_id: int) -> SharedMargin | None:
        """Combined margin use of the open sessions on this session's wallet (None: the session
        is not open, or they hold no perps)."""
        session = self.store.get_session(session_id)
        if not session.is_open:
            return None
        sharing = [s for s in self.store.list_sessions(states=OPEN_STATES) if s.wallet.lower() == session.wallet.lower()]
        use = margin_use(self.store, self.gateway.venues, session.wallet, sharing)
        if use is None:
            return None
        threshold = self.config.wallets.margin_warning
        return SharedMargin(margin_used=use["margin_used"], account_value=use["account_value"], ratio=use["ratio"],
                            source=use["source"], sessions=tuple(s.id for s in sharing), threshold=threshold,
                            warning=len(sharing) > 1 and use["ratio"] >= Decimal(str(threshold)))

    def session_view(self, session_id: int, *, runs: int = 5) -> SessionView:
        """Everything ``sessions show`` displays about a session."""
        session = self.store.get_session(session_id)
        return SessionView(session=session, transitions=tuple(self.transitions(session_id)),
                           recent_runs=tuple(self.runs(session_id, limit=runs)), upcoming=tuple(self.upcoming(session_id)),
                           portfolio=self.portfolio(session_id),
                           pending_suggestions=len(self.suggestions(session_id, status=PENDING)),
                           margin=self.shared_margin(session_id), hold=self.store.holds().get(session_id))

    def wallet_view(self, address: str) -> WalletView:
        """A wallet with its funds and allocations per asset, and its open sessions."""
        wallet = self.wallet(address)
        funds = self.store.wallet_funds(wallet.address)
        allocated = {key: amount for key, amount in self.store.allocated(wallet.address).items() if amount and key[1]}
        assets = []
        for network, asset in sorted(set(funds) | set(allocated)):
            symbol, decimals = asset_info(asset, network)
            assets.append(WalletAsset(network=network, asset=asset, symbol=symbol, decimals=decimals,
                                      funds=funds.get((network, asset)), allocated=allocated.get((network, asset), 0)))
        lower = wallet.address.lower()
        sessions = tuple(s.id for s in self.store.list_sessions(states=OPEN_STATES) if s.wallet.lower() == lower)
        return WalletView(wallet=wallet, assets=tuple(assets), open_sessions=sessions)

    # -- wallets -------------------------------------------------------------------------------

    def add_wallet(self, *, paper: bool = False, key_env: str | None = None, keystore: str | None = None,
                   password_env: str | None = None, label: str = "", now: datetime | None = None) -> str:
        """Add a wallet and return its address: ``paper=True`` generates a key (kept encrypted in
        the home); ``key_env`` names an environment variable holding a key; ``keystore`` is an
        encrypted keystore file whose password is in ``password_env``. Keys are never stored."""
        sources = [name for name, given in (("paper", paper), ("key_env", key_env), ("keystore", keystore)) if given]
        if len(sources) != 1:
            raise TickloopError("a wallet needs exactly one key source: paper, key_env or keystore"
                                + (f" (got {', '.join(sources)})" if sources else ""))
        at = self._at(now)
        if paper:
            wallet = Wallet(address=new_paper_key(self.config.home), kind=PAPER, created_at=at, label=label)
        elif key_env:
            wallet = Wallet(address=address_from_env(key_env), kind=ENV, created_at=at, key_env=key_env, label=label)
        else:
            password_env = password_env or DEFAULT_PASSWORD_ENV
            path = str(Path(keystore).expanduser().absolute())
            wallet = Wallet(address=address_from_keystore(path, password_env), kind=KEYSTORE, created_at=at,
                            keystore=path, password_env=password_env, label=label)
        self.store.add_wallet(wallet)
        return wallet.address

    def wallets(self) -> list[Wallet]:
        return self.store.list_wallets()

    def wallet(self, address: str) -> Wallet:
        found = self.store.get_wallet(address)
        if found is None:
            raise NotFoundError(f"wallet {address} has not been added")
        return found

    def fund_wallet(self, address: str, network: str, asset: str, amount: int | str) -> int:
        """Credit a paper wallet with ``amount`` raw units of an asset; returns its new balance."""
        wallet = self.wallet(address)
        if not wallet.is_paper:
            raise TickloopError(f"wallet {wallet.address} is a real wallet ({wallet.key_source()}); only paper"
                                " wallets can be funded by tickloop")
        if not is_raw_amount(str(amount)):
            raise TickloopError(f"amount {amount!r} must be a whole number of raw units (0 to 2**256 - 1)")
        return self.store.fund_wallet(wallet.address, network, asset, int(amount))

    # -- suggestions ---------------------------------------------------------------------------

    def suggestions(self, session_id: int | None = None, status: str | None = None, *,
                    limit: int = 1000) -> list[Suggestion]:
        """Suggestions, newest first; ``status`` as of now (a pending one past its expiry is
        ``expired``)."""
        now = self.now()
        # A pending suggestion past its expiry reads expired; one an approval found expired is
        # stored expired.
        stored = None if status is None else [PENDING] if status == PENDING else \
            [PENDING, EXPIRED] if status == EXPIRED else [status]
        found = self.gateway.suggestions.list(session_id=session_id, statuses=stored, limit=limit)
        shown = [attrs.evolve(s, status=s.effective_status(now)) for s in found]
        return [s for s in shown if status is None or s.status == status]

    def suggestion(self, suggestion_id: int) -> Suggestion:
        found = self.gateway.suggestions.get(suggestion_id)
        return attrs.evolve(found, status=found.effective_status(self.now()))

    def approve(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Execute a pending suggestion through the same venue path as auto mode, exactly once.

        Refused (:class:`TickloopError` naming the reason) when it expired, was deleted,
        rejected, or already approved or executed; of two concurrent approvals one executes and
        the other is refused.
        """
        at = self._at(now)
        gateway = self.gateway
        store = gateway.suggestions
        decided = store.decide(suggestion_id, APPROVED, at=at, by=str(Owner.current()))
        if decided is None:
            current = store.get(suggestion_id)
            if current.status == APPROVED:
                raise TickloopError(self._stuck_approval(current, at))
            if current.effective_status(at) == EXPIRED and current.status == PENDING:
                expired = store.decide(suggestion_id, EXPIRED, at=at)
                if expired is not None:
                    self._notify("tickloop_suggestion_decided", session=self.store.get_session(expired.session_id),
                                 suggestion=expired)
                current = expired or store.get(suggestion_id)
            raise TickloopError(refusal(current, at))
        session = self.store.get_session(decided.session_id)
        try:
            execution = gateway.execute(session, decided.action, suggestion_id=suggestion_id)
        except Exception as exc:  # a venue bug: recorded as the suggestion's failure, never retried
            log.exception("executing suggestion %s failed", suggestion_id)
            result = store.finish(suggestion_id, SUGGESTION_FAILED, at=self.now(), error=f"{type(exc).__name__}: {exc}")
        else:
            from tickloop.jsondata import to_data

            result = store.finish(suggestion_id, EXECUTED if execution.ok else SUGGESTION_FAILED, at=self.now(),
                                  result=to_data(execution.data) if execution.ok else None, error=execution.error)
        self._notify("tickloop_suggestion_decided", session=session, suggestion=result)
        self._continue_unwind(session.id)
        return result

    def reject(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Reject a pending suggestion; it will never execute."""
        at = self._at(now)
        store = self.gateway.suggestions
        decided = store.decide(suggestion_id, REJECTED, at=at)
        if decided is None:
            raise TickloopError(refusal(store.get(suggestion_id), at, verb="reject"))
        self._notify("tickloop_suggestion_decided", session=self.store.get_session(decided.session_id),
                     suggestion=decided)
        return decided

    def _continue_unwind(self, session_id: int, *, run_here: bool = True) -> None:
        """After an approval: an unwinding session whose suggestions are all executed has its
        closers check again (they stop it once it is flat); ``run_here=False`` only schedules
        that close run (a serve that recovered an approval runs it in its loop)."""
        session = self.store.get_session(session_id)
        if session.state is not State.UNWINDING or session.next_run_at is not None:
            return
        decided = self.gateway.suggestions.list(session_id=session_id, limit=1000)
        if any(s.status == PENDING for s in decided):
            return
        since = next((t.at for t in reversed(self.store.transitions(session_id)) if t.action == "unwind"), None)
        if any(s.status == REJECTED and since is not None and s.created_at >= since for s in decided):
            return  # a person said no: the session waits for a forced stop
        at = self.now()
        session = self.store.update_unwind(session_id, stage="close", next_run_at=at)
        if session is None:
            return
        if run_here and (self._serving or not self._store_served_elsewhere()):
            with self._pinned_to(at if self._injected_clock else None):
                self._sync()
                self._due.pop(session_id, None)
                self._run_sessions([session], at)

    def memory(self, session_id: int) -> Memory:
        """The session's memory, with the same methods and results as ``agent.memory``."""
        session = self.store.get_session(session_id)
        return Memory(self.memory_backend, session_id=session.id, agent=session.agent,
                      now=lambda: self.now().timestamp())

    # -- the loop ------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Run]:
        """Run every session due at ``now`` (once each, however late) and return the finished runs."""
        at = _utc(now)
        with self._pinned_to(at):
            self._sync()
            return self._run_sessions(self._pop_due(at), at)

    def run_now(self, session_id: int, now: datetime | None = None) -> Run:
        """Run one cycle of a running session now, outside its schedule; its next run is then
        computed from this run's completion. Refused while the session is not running."""
        with self._pinned_to(_utc(now) if now is not None else None):
            at = self.now()
            self._sync()
            session = self._open.get(session_id) or self.store.get_session(session_id)
            if session.state is not State.RUNNING:
                raise TickloopError(f"session {session_id} is {session.state}; only a running session can run")
            if session_id in self._inflight:
                raise TickloopError(f"session {session_id} is already running a cycle")
            self._due.pop(session_id, None)
            return self._run_sessions([attrs.evolve(session, next_run_at=at)], at)[-1]

    @contextlib.contextmanager
    def _pinned_to(self, at: datetime | None) -> Iterator[None]:
        """The clock reads ``at`` inside the block (nothing changes for None)."""
        previous = self._pinned
        if at is not None:
            self._pinned = at
        try:
            yield
        finally:
            self._pinned = previous

    def _run_sessions(self, due: list[Session], at: datetime) -> list[Run]:
        """Run ``due`` now and wait for them: the skipped runs, then the finished ones."""
        pending, skipped = self._dispatch(due, at)
        outcomes = [(run, session, _outcome(run, future)) for run, session, future in pending]
        finished_at = self.now()
        return skipped + self._complete([(run, session, outcome, self._finish(run, session, outcome, finished_at))
                                         for run, session, outcome in outcomes])

    def next_due(self) -> datetime | None:
        """When the earliest scheduled run is due (None when nothing is scheduled)."""
        self._sync()
        while self._heap and self._due.get(self._heap[0][1]) is not self._heap[0][2]:
            heapq.heappop(self._heap)
        return self._heap[0][2] if self._heap else None

    def serve(self, *, stop: threading.Event | None = None, ready: Callable[[], None] | None = None) -> None:
        """Run sessions on the real clock until ``stop`` is set; owns the store meanwhile.

        Sleeps until the next due time; a completed run or a session changed by another process
        (``tickloop sessions pause`` …) wakes it at once.
        """
        stop = stop or threading.Event()
        self.store.acquire_owner()
        self._serving = True
        interrupted = self.store.recover_interrupted(at=self.now())
        for run in interrupted:
            self._notify("tickloop_run_finished", session=self.store.get_session(run.session_id), run=run)
        self._start_safekeeping()  # before any dispatch: a re-run sees the fills recovery booked
        completed: queue.SimpleQueue[tuple[Future[RunOutcome], Completed]] = queue.SimpleQueue()
        self.store.listen(self._wake.set)
        if ready is not None:
            ready()

        flight: set[Future[RunOutcome]] = set()
        # Each run is made durable the moment it finishes (an inline run before the next one
        # starts), ahead of its group's commit: a crash loses no finished run.
        record = getattr(self.store, "record_finished", None)

        def submitted(run: Run, session: Session, future: Future[RunOutcome]) -> None:
            def callback(done: Future[RunOutcome]) -> None:
                outcome = _outcome(run, done)
                finish = self._finish(run, session, outcome, self.now())
                if record is not None:
                    try:
                        record(finish)
                    except Exception:  # the group commit still records it
                        log.exception("recording run %s ahead of its commit failed", run.id)
                completed.put((done, (run, session, outcome, finish)))
                self._wake.set()

            flight.add(future)
            future.add_done_callback(callback)

        def finished_runs() -> list[Completed]:
            batch = []
            while True:
                try:
                    future, item = completed.get_nowait()
                except queue.Empty:
                    return batch
                flight.discard(future)
                batch.append(item)

        try:
            while not stop.is_set():
                self._wake.clear()
                self._sync()
                until_recovery = self._check_recovery()  # work dead processes left, every interval
                now = self.now()
                self._dispatch(self._pop_due(now, SERVE_BATCH), now, submitted)
                batch = finished_runs()
                if batch:
                    self._complete(batch)
                    continue
                upcoming = self.next_due()
                wait = IDLE_WAIT if upcoming is None else (upcoming - self._clock()).total_seconds()
                wait = min(wait, until_recovery)
                if wait > 0:
                    self._wake.wait(min(wait, IDLE_WAIT))
                if stop.is_set():
                    break
            # Stopping: let the runs in flight finish (within a grace), so none is left "running".
            if flight and futures.wait(set(flight), timeout=SHUTDOWN_GRACE).not_done:
                self.executor.close()  # resolves what is left as failed ("executor closed")
                futures.wait(set(flight), timeout=SHUTDOWN_GRACE)
            batch = finished_runs()
            while flight:  # a future's callback queues it just after the future is done
                try:
                    future, item = completed.get(timeout=SHUTDOWN_GRACE)
                except queue.Empty:
                    break
                flight.discard(future)
                batch.append(item)
            self._complete(batch)
        finally:
            self._serving = False

    def wake(self) -> None:
        """Make a sleeping :meth:`serve` look at the schedule again (for ``stop`` events)."""
        self._wake.set()

    def _sync(self) -> None:
        """Reload open sessions when any process created or changed one since the last look."""
        revision = self.store.sessions_revision()
        if revision == self._revision:
            return
        self._open.clear()
        self._due.clear()
        self._heap.clear()
        held = self.store.holds()  # held by reconciliation: not run until resolved (unwinds still are)
        for session in self.store.list_sessions(states=(State.RUNNING, State.UNWINDING)):
            if session.id in held and session.state is State.RUNNING:
                continue
            self._open[session.id] = session
            # A session in flight is rescheduled when its run completes, not here.
            if session.next_run_at is not None and session.id not in self._inflight:
                self._due[session.id] = session.next_run_at
                self._heap.append((session.next_run_at.timestamp(), session.id, session.next_run_at))
        heapq.heapify(self._heap)
        self._revision = revision

    def _schedule(self, session_id: int, at: datetime | None) -> None:
        if at is None:
            self._due.pop(session_id, None)
            return
        self._due[session_id] = at
        heapq.heappush(self._heap, (at.timestamp(), session_id, at))

    def _pop_due(self, now: datetime, most: int | None = None) -> list[Session]:
        """The sessions due at ``now``, earliest first (at most ``most``), each with
        ``next_run_at`` set to the due time it was popped for."""
        limit = now.timestamp()
        heap, due_map, open_, found = self._heap, self._due, self._open, []
        heappop = heapq.heappop
        remaining = -1 if most is None else most
        while heap and heap[0][0] <= limit and remaining:
            _, session_id, at = heappop(heap)
            if due_map.get(session_id) is at:
                del due_map[session_id]
                session = open_[session_id]
                found.append(session if session.next_run_at == at else attrs.evolve(session, next_run_at=at))
                remaining -= 1
        return found

    def _dispatch(self, due: list[Session], now: datetime,
                  submitted: Callable[[Run, Session, Future[RunOutcome]], None] | None = None,
                  ) -> tuple[list[Pending], list[Run]]:
        """Record the due runs as started (one transaction) and hand them to the executor;
        ``submitted`` is called with each run's future as soon as it is submitted (an inline
        run has finished by then).

        Returns the runs in flight and the runs recorded as skipped (missed-run policy ``skip``).
        """
        if not due:
            return [], []
        policy = self.config.runtime.missed_runs
        grace = self.config.runtime.misfire_grace_seconds
        starts: list[RunStart] = []
        sessions: list[Session] = []
        skipped: list[tuple[RunStart, Session, datetime]] = []
        for session in due:
            scheduled = session.next_run_at or now
            kind = "run" if session.state is not State.UNWINDING else \
                "close" if session.unwind_stage == "close" else "unwind"
            if kind == "run" and policy == "skip" and (now - scheduled).total_seconds() > grace:
                resume = schedules.resume_at(session.schedule, anchor=scheduled, now=now)
                skipped.append((RunStart(session.id, kind, scheduled, now), session, resume))
                if resume > now:
                    continue
                scheduled = resume
            starts.append(RunStart(session.id, kind, scheduled, now))
            sessions.append(session)
        skipped_runs = self._record_skipped(skipped, now) if skipped else []
        runs = self.store.start_runs(starts) if starts else []
        portfolios: dict[int, Portfolio] = {}
        if runs:
            gateway = self.gateway
            # Circuit's rule: a new run (or the unwind) discards the suggestions nobody approved.
            gateway.suggestions.delete_pending([r.session_id for r in runs if r.kind != "close"], at=now)
            self._ledger_mark, fresh = self.store.ledger_sessions(self._ledger_mark)
            self._with_ledger |= fresh
            with_ledger = self._with_ledger
            held = [r.session_id for r in runs if r.session_id in with_ledger]
            portfolios = gateway.portfolios(held) if held else {}
        empty = Portfolio()
        pending: list[Pending] = []
        timeout = self.config.runtime.run_timeout_seconds
        frozen = self._pinned
        submit = self.executor.submit
        started = self.hook.tickloop_run_started
        for run, session in zip(runs, sessions):
            self._inflight.add(session.id)
            try:
                started(session=session, run=run)
            except Exception:
                log.exception("a plugin's tickloop_run_started failed; the run goes on")
            portfolio = portfolios.get(session.id, empty)
            if run.kind != "run":
                portfolio = portfolio.select(session.unwind_assets)
            job = RunJob(run_id=run.id, session_id=session.id, agent=session.agent, agent_ref=session.agent_ref,
                         wallet=session.wallet, mode=session.mode, kind=run.kind, settings=session.settings,
                         scheduled_at=run.scheduled_at, started_at=now, portfolio=portfolio, frozen_now=frozen,
                         timeout=timeout, session=session)
            future = submit(job)
            if submitted is not None:
                submitted(run, session, future)
            pending.append((run, session, future))
        return pending, skipped_runs

    def _record_skipped(self, skipped: list[tuple[RunStart, Session, datetime]], now: datetime) -> list[Run]:
        runs = self.store.start_runs([start for start, _, _ in skipped])
        finishes = []
        for run, (_, session, resume) in zip(runs, skipped):
            finishes.append(RunFinish(run.id, session.id, SKIPPED, now, error="missed while the runtime was down"
                                      f" (runtime.missed_runs = \"skip\"); next run {resume.isoformat()}",
                                      next_run_at=resume, last_scheduled_at=run.scheduled_at))
        self.store.finish_runs(finishes)
        recorded = []
        for run, finish, (_, session, resume) in zip(runs, finishes, skipped):
            if resume > now:
                self._schedule(session.id, resume)
            done = attrs.evolve(run, status=SKIPPED, finished_at=now, error=finish.error)
            self._notify("tickloop_run_missed", session=session, scheduled_at=run.scheduled_at, policy="skip")
            self._notify("tickloop_run_finished", session=session, run=done)
            recorded.append(done)
        return recorded

    def _finish(self, run: Run, session: Session, outcome: RunOutcome, finished_at: datetime) -> RunFinish:
        """What the store commits for ``run``: its outcome and the session's next run time."""
        after = schedules.next_run(session.schedule, scheduled_at=run.scheduled_at, finished_at=finished_at) \
            if run.kind == "run" else None
        return RunFinish(run.id, session.id, outcome.status, finished_at, outcome.error, outcome.traceback,
                         outcome.logs, next_run_at=after, last_scheduled_at=run.scheduled_at)

    def _complete(self, items: list[Completed]) -> list[Run]:
        """Commit the outcomes and the sessions' next run times (one transaction), then reschedule."""
        if not items:
            return []
        self.store.finish_runs([finish for _, _, _, finish in items])
        finished: list[Run] = []
        unwound: list[tuple[Session, RunOutcome, datetime]] = []
        ended: list[int] = []
        open_, inflight, schedule = self._open, self._inflight, self._schedule
        run_finished = self.hook.tickloop_run_finished
        running, unwinding = State.RUNNING, State.UNWINDING
        for run, session, outcome, finish in items:
            session_id = session.id
            inflight.discard(session_id)
            done = _finished(run, finish.finished_at, outcome)
            current = open_.get(session_id)
            if run.kind != "run":
                unwound.append((session, outcome, finish.finished_at))
            elif current is not None and current.state is running:
                current = _rescheduled(current, finish.next_run_at, run.scheduled_at, finish.finished_at)
                open_[session_id] = current
                schedule(session_id, finish.next_run_at)
            elif current is not None and current.state is unwinding:
                schedule(session_id, current.next_run_at)  # unwound while this run was in flight
            elif current is None:
                ended.append(session_id)  # paused or stopped while this run was in flight
            try:
                run_finished(session=current or session, run=done)
            except Exception:
                log.exception("a plugin's tickloop_run_finished failed; the runtime goes on")
            finished.append(done)
        for session_id in ended:
            # The stop cleared the session's memory before this run's last writes: clear again.
            if self.store.get_session(session_id).state is State.STOPPED:
                self.memory_backend.clear(session_scope(session_id))
        for session, outcome, at in unwound:
            self._after_unwind(session, outcome, at)
        return finished

    def _after_unwind(self, session: Session, outcome: RunOutcome, at: datetime) -> None:
        """An unwind (or close) run finished: stop the session, or wait for what is not done."""
        if not outcome.closed:
            # The agent's unwind hung or crashed before the closers ran: run them on their own,
            # at once; closers that themselves could not run are tried again after a pause.
            retry = at if session.unwind_stage != "close" else at + CLOSE_RETRY
            if self.store.update_unwind(session.id, stage="close", next_run_at=retry) is not None:
                self._schedule(session.id, retry)
            return
        pending = self.gateway.suggestions.count_pending(session.id)
        if pending:
            # Manual mode: the closers' orders wait for approval; the session stays unwinding
            # until they are executed (then the closers check again) or it is stopped.
            self.store.update_unwind(session.id, stage="close", next_run_at=None)
            self._open.pop(session.id, None)
            self._due.pop(session.id, None)
            return
        self._transition(session.id, "unwound", at, "unwind finished")

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin that fails is logged, never fatal to the runtime."""
        try:
            getattr(self.hook, hook)(**kwargs)
        except Exception:
            log.exception("a plugin's %s failed; the runtime goes on", hook)

    # -- shutting down -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for close in (self.executor.close, self.environment.close, self.store.close, self.memory_backend.close):
            try:
                close()
            except Exception:  # closing is best effort; the first failure must not leak the rest
                log.exception("closing %s failed", close)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
