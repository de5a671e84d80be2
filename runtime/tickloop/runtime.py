"""The runtime: the one object the CLI, the HTTP API, tests and embedding programs talk to.

``Runtime`` is a facade. It holds the parts :mod:`tickloop.bootstrap` builds and the services made
of them: the scheduler (:mod:`tickloop.scheduler`, :mod:`tickloop.serving`), wallet operations
(:mod:`tickloop.accounts`), suggestion decisions (:mod:`tickloop.decisions`) and safekeeping
(:mod:`tickloop.safekeeping`). It owns the session lifecycle and the read models
(:mod:`tickloop.views`) every front end shows.

Time is injected: ``tick(now)`` runs everything due at ``now`` with the clock reading ``now``
meanwhile, so schedule behaviour is tested exactly and without sleeping. ``serve()`` is the same
machinery on the real clock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tickloop import bootstrap, serving
from tickloop import schedule as schedules
from tickloop.accounts import Accounts, canonical_address, checked_allocation
from tickloop.adjustments import Resolution
from tickloop.agents import Agent
from tickloop.bootstrap import Parts
from tickloop.clock import Clock
from tickloop.config import Config
from tickloop.decisions import Decisions
from tickloop.errors import Problem, SettingsError, TickloopError
from tickloop.memory import Memory, session_scope
from tickloop.portfolio import Portfolio
from tickloop.reconcile import Reconciliation
from tickloop.recovery import RecoveryReport, recover
from tickloop.runs import LogLine, Run
from tickloop.safekeeping import Safekeeping
from tickloop.scheduler import Scheduler
from tickloop.sessions import Hold, Session, State, Transition
from tickloop.store import UNCHANGED, NewSession
from tickloop.suggestions import PENDING, Suggestion
from tickloop.venues import Gateway, margin_use
from tickloop.views import SessionView, SharedMargin, WalletAsset, WalletView
from tickloop.wallets import Wallet, asset_info

OPEN_STATES = (State.CREATED, State.RUNNING, State.PAUSED, State.UNWINDING)


class Runtime:
    """Runs agents' sessions on their schedules. Use :meth:`from_config` to build one."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.config, self.pm, self.hook, self.registry = parts.config, parts.pm, parts.pm.hook, parts.registry
        self.store, self.memory_backend, self.agents = parts.store, parts.memory, parts.agents
        self.environment, self.executor, self.clock = parts.environment, parts.executor, parts.clock
        self.scheduler = Scheduler(parts, on_unwound=self._unwound)
        self.decisions = Decisions(parts, self.scheduler)
        self.safekeeping = Safekeeping(parts, self.scheduler, self.decisions.continue_unwind)
        self.decisions.safekeeping = self.safekeeping
        self.accounts = Accounts(parts)
        self._closed = False

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None,
                    overrides: Mapping[str, Any] | None = None, plugins: Iterable[Any] = (),
                    clock: Callable[[], datetime] | None = None) -> Runtime:
        """Build a runtime from ``tickloop.toml`` (``path``, or the one in ``home``), ``TICKLOOP_*``
        variables and ``overrides``; ``plugins`` are extra plugin objects to register; ``clock``
        replaces the real clock (it then also drives the agents' clocks in unwinds)."""
        config = Config.load(path, home=home, overrides=overrides)
        return cls(bootstrap.build(config, plugins=plugins, clock=Clock(clock)))

    def now(self) -> datetime:
        """The runtime's clock: the ``now`` of the current :meth:`tick`, else the real clock."""
        return self.clock.now()

    @property
    def gateway(self) -> Gateway:
        """The path from actions to venues, with this runtime's clock."""
        return self.parts.gateway

    # -- sessions ------------------------------------------------------------------------------

    def start_session(self, agent: str, wallet: str, *, mode: str = "auto", settings: Mapping[str, Any] | None = None,
                      allocation: int | str | None = None, now: datetime | None = None, reason: str = "") -> Session:
        """Start ``agent`` (an entry-point name or a folder path) on ``wallet``; its first run is due at once."""
        at = self.clock.at(now)
        loaded = self.agents.load(agent)
        manifest = loaded.manifest
        if mode not in manifest.allowedExecutionModes:
            allowed = ", ".join(manifest.allowedExecutionModes)
            raise SettingsError(Problem(manifest.file, "allowedExecutionModes",
                                        f"mode {mode!r} is not allowed for agent {manifest.name!r}"
                                        f" (allowed: {allowed})"))
        wallet = canonical_address(loaded, wallet)
        resolved = manifest.resolve_settings(settings or {}, source="session settings")
        raw_allocation = checked_allocation(loaded, allocation)
        asset = manifest.startingAsset
        funding: dict[str, Any] = {}
        if asset is not None and (int(raw_allocation or 0) > 0 or asset.minimum_amount > 0):
            # A balance is needed: the wallet must be known, and the allocation (the minimum
            # unless given) must fit in its free balance, which the store checks atomically.
            raw_allocation = raw_allocation or asset.minimumAmount
            symbol, decimals = asset_info(asset.address, asset.network)
            funding = {"allocation_network": asset.network, "allocation_asset": asset.address,
                       "allocation_symbol": symbol, "allocation_decimals": decimals,
                       "wallet_balance": self.accounts.balance(loaded, wallet, asset.network, asset.address)}
        elif raw_allocation is not None and int(raw_allocation) > 0:
            raise TickloopError(f"agent {manifest.name!r} declares no [startingAsset] in {manifest.file}, so it"
                                f" cannot be given an allocation ({raw_allocation})")
        session, transition = self.store.create_session(NewSession(
            agent=manifest.name, agent_ref=loaded.ref, wallet=wallet, mode=mode, schedule=manifest.schedule,
            settings=resolved, allocation=raw_allocation, at=at,
            next_run_at=schedules.first_run(manifest.schedule, at), reason=reason, **funding))
        self._changed(session, transition)
        return session

    def pause(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """Stop running the session's cycles; its schedule and memory are kept."""
        return self._transition(session_id, "pause", self.clock.at(now), reason)

    def resume(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """Run again from the next scheduled point at or after ``now`` (never a catch-up run)."""
        at = self.clock.at(now)
        session = self.store.get_session(session_id)
        next_at = schedules.resume_at(session.schedule, anchor=session.next_run_at or at, now=at)
        return self._transition(session_id, "resume", at, reason, next_run_at=next_at)

    def stop(self, session_id: int, now: datetime | None = None, *, reason: str = "") -> Session:
        """End the session without unwinding (also forces an unwind that waits for approvals to
        end); its session memory is cleared and its pending suggestions are deleted. Positions
        it still holds are left on the venues, and said so in the transition's reason."""
        left = self.safekeeping.left_open(session_id)
        if left:
            reason = f"{reason}; left open: {left}" if reason else f"left open: {left}"
        return self._transition(session_id, "stop", self.clock.at(now), reason, next_run_at=None)

    def unwind(self, session_id: int, assets: Iterable[str] | None = None, now: datetime | None = None, *,
               reason: str = "") -> Session:
        """Call the agent's ``unwind`` once, then stop the session.

        The unwind runs here unless another process serves the store; then that ``serve`` runs
        it (it is told at once). An unwind interrupted by a crash runs again after restart.
        An ``assets`` entry the session holds no position in is refused (nothing changes); fills
        a dead process left unbooked are recovered first, so the closers see them.
        """
        at = self.clock.at(now)
        self.store.get_session(session_id)
        pinned = at if now is not None or self.clock.injected else None
        with self.clock.pin(pinned):
            self.safekeeping.after_recovery(recover(self.gateway, session_ids=[session_id]))
        if assets is not None:
            assets = list(assets)
            self.safekeeping.check_assets(session_id, assets)
        session = self._transition(session_id, "unwind", at, reason, next_run_at=at, unwind_assets=assets)
        if self.scheduler.runs_here():
            with self.clock.pin(pinned):
                self.scheduler.run_here(session, at)
            session = self.store.get_session(session_id)
        return session

    def _transition(self, session_id: int, action: str, at: datetime, reason: str,
                    next_run_at: datetime | None = UNCHANGED, unwind_assets: list[str] | None = UNCHANGED) -> Session:
        session, transition = self.store.transition(session_id, action, at=at, reason=reason, next_run_at=next_run_at,
                                                    unwind_assets=unwind_assets)
        self._changed(session, transition)
        return session

    def _unwound(self, session_id: int, at: datetime) -> None:
        self._transition(session_id, "unwound", at, "unwind finished")

    def _changed(self, session: Session, transition: Transition) -> None:
        if session.state is State.STOPPED:
            self.memory_backend.clear(session_scope(session.id))
            self.gateway.suggestions.delete_pending([session.id], at=transition.at)
        self.scheduler.changed(session)
        self.parts.notify("tickloop_session_transitioned", session=session, transition=transition)

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

    def logs(self, *, session_id: int | None = None, run_id: int | None = None, limit: int = 1000,
             after: int | None = None) -> list[tuple[int, LogLine]]:
        """Log lines as ``(run id, line)``, oldest first: the last ``limit``, or with ``after``
        (a line's ``id``) the first ``limit`` lines after it, for following new ones."""
        return self.store.logs(session_id=session_id, run_id=run_id, limit=limit, after=after)

    def portfolio(self, session_id: int) -> Portfolio:
        """What the session holds now, from its ledger (marked at venue prices when available)."""
        self.store.get_session(session_id)
        return self.gateway.portfolio(session_id)

    def memory(self, session_id: int) -> Memory:
        """The session's memory, with the same methods and results as ``agent.memory``."""
        session = self.store.get_session(session_id)
        return Memory(self.memory_backend, session_id=session.id, agent=session.agent,
                      now=lambda: self.now().timestamp())

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
        sharing = [s for s in self.store.list_sessions(states=OPEN_STATES)
                   if s.wallet.lower() == session.wallet.lower()]
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
                           recent_runs=tuple(self.runs(session_id, limit=runs)),
                           upcoming=tuple(self.upcoming(session_id)),
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

    # -- wallets (tickloop.accounts) -------------------------------------------------------------

    def add_wallet(self, *, paper: bool = False, key_env: str | None = None, keystore: str | None = None,
                   password_env: str | None = None, label: str = "", now: datetime | None = None) -> str:
        """Add a wallet and return its address: ``paper=True`` generates a key (kept encrypted in
        the home); ``key_env`` names an environment variable holding a key; ``keystore`` is an
        encrypted keystore file whose password is in ``password_env``. Keys are never stored."""
        return self.accounts.add(paper=paper, key_env=key_env, keystore=keystore, password_env=password_env,
                                 label=label, now=now)

    def wallets(self) -> list[Wallet]:
        return self.store.list_wallets()

    def wallet(self, address: str) -> Wallet:
        return self.accounts.get(address)

    def fund_wallet(self, address: str, network: str, asset: str, amount: int | str) -> int:
        """Credit a paper wallet with ``amount`` raw units of an asset; returns its new balance."""
        return self.accounts.fund(address, network, asset, amount)

    # -- suggestions (tickloop.decisions) --------------------------------------------------------

    def suggestions(self, session_id: int | None = None, status: str | None = None, *,
                    limit: int = 1000) -> list[Suggestion]:
        """Suggestions, newest first; ``status`` as of now (a pending one past its expiry is ``expired``)."""
        return self.decisions.list(session_id, status, limit=limit)

    def suggestion(self, suggestion_id: int) -> Suggestion:
        return self.decisions.get(suggestion_id)

    def approve(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Execute a pending suggestion through the same venue path as auto mode, exactly once.

        Refused (:class:`TickloopError` naming the reason) when it expired, was deleted,
        rejected, or already approved or executed; of two concurrent approvals one executes and
        the other is refused.
        """
        return self.decisions.approve(suggestion_id, now)

    def reject(self, suggestion_id: int, now: datetime | None = None) -> Suggestion:
        """Reject a pending suggestion; it will never execute."""
        return self.decisions.reject(suggestion_id, now)

    # -- safekeeping (tickloop.safekeeping) ------------------------------------------------------

    def recover(self, now: datetime | None = None) -> RecoveryReport:
        """Settle the intents and approved suggestions that dead processes left (asking the
        venues by client id); returns what was done."""
        return self.safekeeping.recover(now)

    def reconcile(self, now: datetime | None = None, *, wallets: Iterable[str] | None = None,
                  hold: bool = True) -> Reconciliation:
        """Recover, then compare every account sessions trade on (or those of ``wallets``) with
        the sum of its sessions' ledgers; hold the sessions that disagree and release those that
        agree again (``hold=False``: only report)."""
        return self.safekeeping.reconcile(now, wallets=wallets, hold=hold)

    def adopt(self, session_id: int, asset: str | None = None, now: datetime | None = None) -> Resolution:
        """Book the venue's view of the session's differences (or only ``asset``'s) into its ledger."""
        return self.safekeeping.adopt(session_id, asset, now)

    def close_difference(self, session_id: int, asset: str | None = None, now: datetime | None = None) -> Resolution:
        """Book the session's differences (or ``asset``'s) and trade them away (manual mode: suggestions)."""
        return self.safekeeping.close_difference(session_id, asset, now)

    def holds(self) -> dict[int, Hold]:
        """Held sessions (not run by the scheduler until reconciled), by session id."""
        return self.safekeeping.holds()

    # -- the scheduler (tickloop.scheduler, tickloop.serving) ------------------------------------

    def tick(self, now: datetime) -> list[Run]:
        """Run every session due at ``now`` (once each, however late) and return the finished runs."""
        return self.scheduler.tick(now)

    def run_now(self, session_id: int, now: datetime | None = None) -> Run:
        """Run one cycle of a running session now, outside its schedule; its next run is then
        computed from this run's completion. Refused while the session is not running."""
        return self.scheduler.run_now(session_id, now)

    def next_due(self) -> datetime | None:
        """When the earliest scheduled run is due (None when nothing is scheduled)."""
        return self.scheduler.next_due()

    def serve(self, *, stop: threading.Event | None = None, ready: Callable[[], None] | None = None) -> None:
        """Run sessions on the real clock until ``stop`` is set; owns the store meanwhile.

        Sleeps until the next due time; a completed run or a session changed by another process
        (``tickloop sessions pause`` …) wakes it at once.
        """
        serving.serve(self.scheduler, self.safekeeping, stop=stop, ready=ready)

    def wake(self) -> None:
        """Make a sleeping :meth:`serve` look at the schedule again (for ``stop`` events)."""
        self.scheduler.wakeup.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.parts.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
