"""Executing runs: the job an executor receives, the outcome it returns, and the code that
builds an agent's context and calls it (the same in the parent and in worker processes)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol

import attrs

from tickloop.context import AgentContext, Platforms
from tickloop.errors import TickloopError
from tickloop.memory import Memory, MemoryBackend
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
    portfolio: Portfolio = Portfolio()
    # Injected time (Runtime.tick(now)): the agent's clock reads this; None means the real clock.
    frozen_now: datetime | None = None
    timeout: float | None = None
    #: the session as the runtime saw it at dispatch (routers and closers are given it)
    session: Session | None = None


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


class RunEnvironment:
    """What executes a :class:`RunJob` in this process: agents, memory, hooks and the gateway to
    the venues (opened on first use: a run that trades nothing never touches the state store)."""

    def __init__(self, *, hook: Any, memory: MemoryBackend, agents: AgentLoader, config: Config | None = None,
                 registry: Registry | None = None, store: StateStore | None = None) -> None:
        self.hook = hook
        self.memory = memory
        self.agents = agents
        self.config = config
        self.registry = registry
        self._store = store
        self._own_store = False
        self._gateway: Gateway | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> RunEnvironment:
        """Build an environment from configuration alone (in a worker process)."""
        from tickloop.agents import AgentLoader
        from tickloop.plugins import make_plugin_manager
        from tickloop.registry import Registry

        pm = make_plugin_manager(block=config.plugins.block, load=config.plugins.load)
        registry = Registry.from_plugin_manager(pm)
        memory = registry.get("memory", config.memory.backend, key="memory.backend").factory(config)
        return cls(hook=pm.hook, memory=memory, agents=AgentLoader(), config=config, registry=registry)

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
                                        venues=Venues(self.registry, self.config),
                                        clock=lambda: datetime.now(timezone.utc))
            gateway = self._gateway
        return gateway if clock is None else gateway.with_clock(clock)

    def close(self) -> None:
        """Close the venues this environment built, and the store it opened itself."""
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.venues.close()
            gateway.suggestions.close()
        if self._own_store and self._store is not None:
            self._store.close()
            self._store = None

    def context(self, job: RunJob, on_log: Callable[[LogLine], None] | None = None) -> AgentContext:
        clock = _clock(job.frozen_now)
        session = job.session
        platforms = Platforms(self._venue_api(session, clock)) if session is not None else None
        return AgentContext(
            sessionId=job.session_id,
            sessionWalletAddress=job.wallet,
            executionMode=job.mode,
            settings=job.settings,
            portfolio=job.portfolio,
            memory=Memory(self.memory, session_id=job.session_id, agent=job.agent, now=lambda: clock().timestamp()),
            platforms=platforms,
            clock=clock,
            on_log=on_log,
            on_clear_suggestions=(lambda: self.gateway(clock).suggestions.delete_pending([job.session_id], at=clock()))
            if self.config is not None else None,
            submit=(lambda action: self.gateway(clock).submit(session, action))
            if self.config is not None and session is not None else None,
        )

    def _venue_api(self, session: Session, clock: Callable[[], datetime]) -> Callable[[str], Any]:
        def api(name: str) -> Any:
            if self.registry is None or name not in self.registry.names("venue"):
                return None
            gateway = self.gateway(clock)
            return gateway.venues.get(name).agent_api(session, gateway)

        return api

    def execute(self, job: RunJob, on_log: Callable[[LogLine], None] | None = None) -> RunOutcome:
        """Run the job's agent function (and for an unwind, the closers); every failure becomes
        an outcome, nothing raises."""
        context = None
        if job.kind != "close":
            try:
                agent = self.agents.load(job.agent_ref)
            except TickloopError as exc:
                if job.kind == "run":
                    return RunOutcome(job.run_id, FAILED, error=str(exc))
                agent, outcome = None, RunOutcome(job.run_id, FAILED, error=str(exc))
            context = self.context(job, on_log)
            if agent is not None:
                function = agent.unwind if job.kind == "unwind" else agent.run
                if function is None:
                    context.log("agent has no unwind function; the closers close what is open")
                    outcome = RunOutcome(job.run_id, SUCCEEDED)
                else:
                    outcome = self.hook.tickloop_run_call(job=job, context=context, function=function)
                    if outcome is None:  # every implementation declined (the built-in one was blocked)
                        outcome = RunOutcome(job.run_id, FAILED,
                                             error="no plugin invoked the agent (tickloop_run_call)")
            if job.kind == "run":
                return outcome
        else:
            context = self.context(job, on_log)
            outcome = RunOutcome(job.run_id, SUCCEEDED)
        return self._close(job, context, outcome)

    def _close(self, job: RunJob, context: AgentContext, outcome: RunOutcome) -> RunOutcome:
        """After an unwind: hand what the session still holds to the closers."""
        session = job.session
        if session is None or self.config is None:
            return attrs.evolve(outcome, logs=tuple(context.logs), closed=True)
        try:
            gateway = self.gateway(context._clock)
            # The agent's unwind suggested orders (manual mode, or a router's threshold): they are
            # not executed yet, so the closers would suggest closing the same positions again, and
            # approving both would close twice (flipping the position). The closers wait: once the
            # suggestions are approved, the runtime runs them again (a close run).
            waiting = gateway.suggestions.count_pending(session.id) if job.kind == "unwind" else 0
            if waiting:
                context.log(f"the closers wait until the {waiting} suggestion(s) of the agent's unwind are approved")
                return attrs.evolve(outcome, logs=tuple(context.logs), closed=True)
            reports = gateway.close_positions(
                session, session.unwind_assets, lambda text, error: context.log(text, error=error))
        except Exception as exc:
            context.log(f"closing positions failed: {type(exc).__name__}: {exc}", error=True)
            return attrs.evolve(outcome, logs=tuple(context.logs))
        if session.unwind_assets is not None:
            held = gateway.portfolio(session.id, marked=False)
            selected = set(held.select(session.unwind_assets).positions)
            for p in held.positions:
                if p in selected:
                    continue
                context.log(f"{p.venue} {p.coin} size {p.size} left open: not among the assets selected for unwind")
        residue = [item for report in reports for item in report.residue]
        if residue and outcome.status == SUCCEEDED:
            # Positions the closers could not close make the unwind a failure people see in
            # `runs list`, not a success with a footnote.
            return attrs.evolve(outcome, status=FAILED, logs=tuple(context.logs), closed=True,
                                error="left open: " + "; ".join(item.describe() for item in residue))
        return attrs.evolve(outcome, logs=tuple(context.logs), closed=True)


def _clock(frozen: datetime | None) -> Callable[[], datetime]:
    if frozen is not None:
        return lambda: frozen
    return lambda: datetime.now(timezone.utc)
