"""Executing runs: the job an executor receives, the outcome it returns, and the code that
builds an agent's context and calls it (the same in the parent and in worker processes)."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol

import attrs

from tickloop.context import AgentContext
from tickloop.errors import TickloopError
from tickloop.memory import Memory, MemoryBackend
from tickloop.portfolio import Portfolio
from tickloop.runs import FAILED, SUCCEEDED, LogLine

if TYPE_CHECKING:
    from tickloop.agents import AgentLoader
    from tickloop.config import Config


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


@attrs.frozen
class RunOutcome:
    """How a run ended; the runtime adds ``finished_at`` from its own clock."""

    run_id: int
    status: str
    error: str | None = None
    traceback: str | None = None
    logs: tuple[LogLine, ...] = ()


class Executor(Protocol):
    """What an executor plugin's factory returns."""

    def submit(self, job: RunJob) -> Future[RunOutcome]:
        """Start the job; the future resolves to its outcome (never to an exception for agent errors)."""

    def close(self) -> None:
        """Stop workers; jobs still running are abandoned."""


class RunEnvironment:
    """What executes a :class:`RunJob` in this process: agents, memory and hooks."""

    def __init__(self, *, hook: Any, memory: MemoryBackend, agents: AgentLoader) -> None:
        self.hook = hook
        self.memory = memory
        self.agents = agents

    @classmethod
    def from_config(cls, config: Config) -> RunEnvironment:
        """Build an environment from configuration alone (in a worker process)."""
        from tickloop.agents import AgentLoader
        from tickloop.plugins import make_plugin_manager
        from tickloop.registry import Registry

        pm = make_plugin_manager(block=config.plugins.block)
        registry = Registry.from_plugin_manager(pm)
        memory = registry.get("memory", config.memory.backend, key="memory.backend").factory(config)
        return cls(hook=pm.hook, memory=memory, agents=AgentLoader())

    def context(self, job: RunJob, on_log: Callable[[LogLine], None] | None = None) -> AgentContext:
        clock = _clock(job.frozen_now)
        return AgentContext(
            sessionId=job.session_id,
            sessionWalletAddress=job.wallet,
            executionMode=job.mode,
            settings=job.settings,
            portfolio=job.portfolio,
            memory=Memory(self.memory, session_id=job.session_id, agent=job.agent, now=lambda: clock().timestamp()),
            clock=clock,
            on_log=on_log,
        )

    def execute(self, job: RunJob, on_log: Callable[[LogLine], None] | None = None) -> RunOutcome:
        """Run the job's agent function; every failure becomes an outcome, nothing raises."""
        try:
            agent = self.agents.load(job.agent_ref)
        except TickloopError as exc:
            return RunOutcome(job.run_id, FAILED, error=str(exc))
        context = self.context(job, on_log)
        function = agent.unwind if job.kind == "unwind" else agent.run
        if function is None:
            context.log("agent has no unwind function; nothing to do")
            return RunOutcome(job.run_id, SUCCEEDED, logs=tuple(context.logs))
        outcome = self.hook.tickloop_run_call(job=job, context=context, function=function)
        if outcome is None:  # every implementation declined (the built-in one was blocked)
            return RunOutcome(job.run_id, FAILED, error="no plugin invoked the agent (tickloop_run_call)")
        return outcome


def _clock(frozen: datetime | None) -> Callable[[], datetime]:
    if frozen is not None:
        return lambda: frozen
    return lambda: datetime.now(timezone.utc)
