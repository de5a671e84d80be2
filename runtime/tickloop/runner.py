"""Executing runs: the job an executor receives, the outcome it returns, the code that builds an
agent's context and calls it (:class:`AgentRunner`, wherever agent code runs) and the runtime's
side of a run (:class:`RunEnvironment`: its channel's binding, the gateway, the closers)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tickloop.binding import RunBinding
from tickloop.channel import Channel, LocalChannel
from tickloop.context import AgentContext
from tickloop.errors import TickloopError
from tickloop.memory import MemoryBackend
from tickloop.portfolio import Portfolio
from tickloop.runs import FAILED, SUCCEEDED, LogLine
from tickloop.sessions import Session

if TYPE_CHECKING:
    from tickloop.agents import AgentLoader
    from tickloop.config import Config
    from tickloop.registry import Registry
    from tickloop.store import StateStore
    from tickloop.venues import Gateway


@attrs.frozen
class RunJob:
    """One run to execute: everything the agent's context is built from. Picklable."""

    run_id: int
    session_id: int
    agent: str
    agent_ref: str
    wallet: str
    mode: str
    kind: str  # "run" | "unwind"
    settings: dict[str, Any]
    scheduled_at: datetime
    started_at: datetime
    portfolio: Portfolio = attrs.field(factory=Portfolio)
    # Injected time (Runtime.tick(now)): the agent's clock reads this; None means the real clock.
    frozen_now: datetime | None = None
    timeout: float | None = None
    #: the session as the runtime saw it at dispatch (routers and closers are given it)
    session: Session | None = None
    #: the run's permit: calls over its channel must carry it (empty: the binding makes one)
    permit: str = attrs.field(default="", repr=False)


@attrs.frozen
class RunOutcome:
    """How a run ended; the runtime adds ``finished_at`` from its own clock."""

    run_id: int
    status: str
    error: str | None = None
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()
    #: for an unwind or close run: the closers ran (what is still open was reported)
    closed: bool = False


class Executor(Protocol):
    """What an executor plugin's factory returns."""

    def submit(self, job: RunJob) -> Future[RunOutcome]:
        """Start the job; the future resolves to its outcome (never to an exception for agent errors)."""

    def close(self) -> None:
        """Stop workers; jobs still running are abandoned."""


class AgentRunner:
    """Calls an agent's function for a job, wherever agent code runs: the runtime's own thread
    (``inline``) or a worker process (``process``). Everything beyond the job itself reaches the
    runtime through ``channel``."""

    def __init__(self, *, hook: Any, agents: AgentLoader) -> None:
        self.hook = hook
        self.agents = agents

    def run(self, job: RunJob, channel: Channel, on_log: Callable[[LogLine], None] | None = None) -> RunOutcome:
        """Run the job's ``run`` or ``unwind``; every failure becomes an outcome, nothing raises."""
        try:
            agent = self.agents.load(job.agent_ref)
        except TickloopError as exc:
            return RunOutcome(job.run_id, FAILED, error=str(exc))
        context = AgentContext(sessionId=job.session_id, sessionWalletAddress=job.wallet, executionMode=job.mode,
                               settings=job.settings, portfolio=job.portfolio, clock=_clock(job.frozen_now),
                               on_log=on_log, channel=channel)
        function = agent.unwind if job.kind == "unwind" else agent.run
        if function is None:
            context.log("agent has no unwind function; the closers close what is open")
            return RunOutcome(job.run_id, SUCCEEDED, logs=tuple(context.logs))
        outcome = self.hook.tickloop_run_call(job=job, context=context, function=function)
        if outcome is None:  # every implementation declined (the built-in one was blocked)
            return RunOutcome(job.run_id, FAILED, error="no plugin invoked the agent (tickloop_run_call)",
                              logs=tuple(context.logs))
        return outcome


class RunEnvironment:
    """The runtime's side of executing runs: agents (for ``inline``), memory, hooks, the gateway
    to the venues (opened on first use: a run that trades nothing never touches the state store),
    a :class:`RunBinding` per run, and the closers after an unwind."""

    def __init__(self, *, hook: Any, memory: MemoryBackend, agents: AgentLoader, config: Config | None = None,
                 registry: Registry | None = None, store: StateStore | None = None) -> None:
        self.hook = hook
        self.memory = memory
        self.agents = agents
        self.runner = AgentRunner(hook=hook, agents=agents)
        self.config = config
        self.registry = registry
        self._store = store
        self._own_store = False
        self._gateway: Gateway | None = None
        self._lock = threading.Lock()

    def gateway(self, clock: Callable[[], datetime] | None = None) -> Gateway:
        """The gateway of this process (with ``clock`` for this run, when given)."""
        from tickloop.venues import Gateway, Venues

        with self._lock:
            if self._gateway is None:
                if self.config is None or self.registry is None:
                    raise TickloopError("this run environment has no configuration: it cannot reach venues")
                store = self._store
                if store is None:
                    store = self.registry.open_state_store(self.config)
                    self._store, self._own_store = store, True
                suggestions = self.registry.get("suggestions", self.config.suggestions.store,
                                                key="suggestions.store").factory(self.config, store)
                self._gateway = Gateway(hook=self.hook, config=self.config, store=store, suggestions=suggestions,
                                        venues=Venues(self.registry, self.config, hook=self.hook),
                                        clock=lambda: datetime.now(UTC))
            gateway = self._gateway
        return gateway if clock is None else gateway.with_clock(clock)

    def secret_env_names(self) -> list[str]:
        """Environment variables that hold keys or keystore passwords of known wallets (never
        passed to agent processes)."""
        from tickloop.wallets import DEFAULT_PASSWORD_ENV

        names = {DEFAULT_PASSWORD_ENV}
        if self.config is not None:
            for wallet in self.gateway().store.list_wallets():
                names.update(name for name in (wallet.key_env, wallet.password_env) if name)
        return sorted(names)

    def close(self) -> None:
        """Close the venues this environment built, and the store it opened itself."""
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.venues.close()
            gateway.suggestions.close()
        if self._own_store and self._store is not None:
            self._store.close()
            self._store = None

    def bind(self, job: RunJob) -> RunBinding:
        """The runtime's end of the job's channel: answers its agent's calls as its session."""
        clock = _clock(job.frozen_now)
        registry = self.registry
        return RunBinding(job, memory=self.memory, clock=clock,
                          gateway=(lambda: self.gateway(clock)) if self.config is not None else None,
                          venue_names=(lambda: registry.names("venue")) if registry is not None else None)

    def execute(self, job: RunJob, on_log: Callable[[LogLine], None] | None = None) -> RunOutcome:
        """Execute the job in this process: the agent's function, then (unwind) the closers."""
        binding = self.bind(job)
        try:
            outcome = RunOutcome(job.run_id, SUCCEEDED) if job.kind == "close" else \
                self.runner.run(job, LocalChannel(binding), on_log)
        finally:
            binding.revoke()
        return self.finish(job, outcome)

    def finish(self, job: RunJob, outcome: RunOutcome) -> RunOutcome:
        """After the agent's function: for an unwind (or a close run), hand what the session still
        holds to the closers, in this process, and add what they logged to the outcome."""
        session = job.session
        if job.kind == "run":
            return outcome
        if session is None or self.config is None:
            return attrs.evolve(outcome, closed=True)
        clock = _clock(job.frozen_now)
        lines = list(outcome.logs)

        def log(text: str, error: bool = False) -> None:
            lines.append(LogLine(at=clock(), level="error" if error else "info", message=text))

        try:
            gateway = self.gateway(clock)
            # The agent's unwind suggested orders (manual mode, or a router's threshold): they are
            # not executed yet, so the closers would suggest closing the same positions again, and
            # approving both would close twice (flipping the position). The closers wait: once the
            # suggestions are approved, the runtime runs them again (a close run).
            waiting = gateway.suggestions.count_pending(session.id) if job.kind == "unwind" else 0
            if waiting:
                log(f"the closers wait until the {waiting} suggestion(s) of the agent's unwind are approved")
                return attrs.evolve(outcome, logs=tuple(lines), closed=True)
            reports = gateway.close_positions(session, session.unwind_assets, log)
        except Exception as exc:
            log(f"closing positions failed: {type(exc).__name__}: {exc}", error=True)
            return attrs.evolve(outcome, logs=tuple(lines))
        if session.unwind_assets is None:
            _venue_residue(gateway, session, log)
        else:
            held = gateway.portfolio(session.id, marked=False)
            selected = set(held.select(session.unwind_assets).positions)
            for p in held.positions:
                if p not in selected:
                    log(f"{p.venue} {p.coin} size {p.size} left open: not among the assets selected for unwind")
        residue = [item for report in reports for item in report.residue]
        if residue and outcome.status == SUCCEEDED:
            # Positions the closers could not close make the unwind a failure people see in
            # `runs list`, not a success with a footnote.
            return attrs.evolve(outcome, status=FAILED, logs=tuple(lines), closed=True,
                                error="left open: " + "; ".join(item.describe() for item in residue))
        return attrs.evolve(outcome, logs=tuple(lines), closed=True)


#: How an unwind's log marks what the venue holds on the session's account that no ledger explains.
VENUE_RESIDUE = "venue residue: "


def _venue_residue(gateway: Gateway, session: Session, log: Callable[[str, bool], None]) -> None:
    """After a full unwind, what the session's account holds that its ledgers do not explain is
    said, never hidden behind "nothing left" (a fill booked nowhere, a position opened by hand)."""
    from tickloop.reconcile import reconcile

    try:
        found = reconcile(gateway, wallets=[session.wallet], hold=False, settle=0.0)
    except Exception as exc:  # the account could not be compared: say so, the unwind stands
        log(f"{VENUE_RESIDUE}the account could not be compared with the ledgers: {exc}", True)
        return
    for difference in found.differences:
        if not difference.sessions or session.id in difference.sessions:
            log(VENUE_RESIDUE + difference.describe(), True)


def _clock(frozen: datetime | None) -> Callable[[], datetime]:
    if frozen is not None:
        return lambda: frozen
    return lambda: datetime.now(UTC)
