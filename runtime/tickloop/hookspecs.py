"""Hook specifications: every extension point of tickloop, in one module.

Each spec's docstring has the same shape: when it is called, ``:param:`` for every argument,
``:returns:`` with what ``None`` means, then (where it applies) the firstresult sentence, and
``.. versionadded::``. Types are imported only for type checkers, so this module costs nothing
at import time. Implement a hook with ``@tickloop.hookimpl`` on a function of the same name; an
implementation may accept fewer arguments than the spec declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from tickloop.actions import Action, Execution
    from tickloop.config import Config
    from tickloop.context import AgentContext
    from tickloop.registry import Backend
    from tickloop.runner import RunJob, RunOutcome
    from tickloop.runs import Run
    from tickloop.sessions import Hold, Session, Transition
    from tickloop.suggestions import Suggestion
    from tickloop.venues import Endpoints

    Register = Callable[[Backend], None]

NAME = "tickloop"

_spec = pluggy.HookspecMarker(NAME)


# ---------------------------------------------------------------------------------------------
# Backends. Each collector hook receives ``register``; call it once per backend with a
# :class:`tickloop.registry.Backend`. Configuration picks a backend by its name.
# ---------------------------------------------------------------------------------------------


@_spec
def tickloop_register_memory_backends(register: Register) -> None:
    """Called once when the registry is built, to collect memory backends.

    A memory backend stores agent memory: string values under string keys, in a scope (one
    session, or one agent for ``shared=True``). Its factory is called as ``factory(config)`` with
    the :class:`tickloop.config.Config` and returns an object with the methods of
    :class:`tickloop.memory.MemoryBackend`. ``[memory] backend = "NAME"`` selects it.

    :param register: call ``register(Backend(name=..., factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_state_stores(register: Register) -> None:
    """Called once when the registry is built, to collect state stores.

    A state store persists sessions, their transitions, runs and run logs. Its factory is
    called as ``factory(config, url)`` and returns a :class:`tickloop.store.StateStore`. The
    store is chosen by the scheme of ``[state] url`` (``sqlite``, ``postgresql``): the backend
    name is that scheme.

    :param register: call ``register(Backend(name=SCHEME, factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_suggestion_stores(register: Register) -> None:
    """Called once when the registry is built, to collect suggestion stores.

    A suggestion store keeps manual-mode suggestions (unsigned intents awaiting approval) and
    must approve each one at most once (compare-and-set on its status). Its factory is called
    as ``factory(config, state_store)``.

    :param register: call ``register(Backend(name=..., factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_executors(register: Register) -> None:
    """Called once when the registry is built, to collect executors.

    An executor runs one :class:`tickloop.runner.RunJob` and produces a
    :class:`tickloop.runner.RunOutcome`: in this process (``inline``), in a worker process
    with a timeout (``process``), or elsewhere. Its factory is called as
    ``factory(config, environment)`` with the :class:`tickloop.runner.RunEnvironment` of this
    process, and returns a :class:`tickloop.runner.Executor`. ``[runtime] executor``
    selects it.

    :param register: call ``register(Backend(name=..., factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_venues(register: Register) -> None:
    """Called once when the registry is built, to collect trading venues.

    A venue executes actions (orders, cancels, transfers, redeems) and reads account state for
    the agent methods under ``agent.platforms.<name>``. Its factory is called as
    ``factory(config)``; ``[venues.NAME]`` holds its options.

    :param register: call ``register(Backend(name=..., factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_closers(register: Register) -> None:
    """Called once when the registry is built, to collect position closers.

    A closer flattens what a session still holds on one venue after the agent's own
    ``unwind``: it cancels the session's orders and closes its share of each position, and
    reports anything it could not close. Its factory is called as ``factory(config)``; the
    backend name is the venue it closes.

    :param register: call ``register(Backend(name=VENUE, factory=..., description=...))``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_register_commands(cli: click.Group) -> None:
    """Called when the ``tickloop`` command line starts, to add commands.

    :param cli: the top-level :class:`click.Group`; add commands with ``cli.add_command`` or
        the ``@cli.command()`` decorator.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------
# Venue endpoints.
# ---------------------------------------------------------------------------------------------


@_spec(firstresult=True)
def tickloop_venue_endpoints(venue: str, config: Config) -> Endpoints | None:
    """Called when a venue whose ``[venues.VENUE]`` table names no URL needs one, to find where
    it connects by default (in the process that uses the venue, once per venue object).

    The built-in ``paper`` plugin answers for ``hyperliquid`` and ``polymarket`` with the paper
    exchanges it runs in this process for the home, and is registered ``trylast``, so any plugin
    can answer first (a testnet, a simulator of its own). With ``paper`` blocked and no other
    answer, a venue used without its URLs fails with an error naming the missing key.

    :param venue: the name of the venue that needs endpoints (``"hyperliquid"``, ``"polymarket"``).
    :param config: the runtime's :class:`tickloop.config.Config` (``config.home`` for state).
    :returns: a :class:`tickloop.venues.Endpoints`: the URLs by the venue's option key
        (``{"base_url": ...}``; ``{"clob_url": ..., "data_url": ...}``) and whether they are
        paper exchanges (paper wallets trade only on those); ``None`` when this plugin has no
        endpoints for ``venue``.

    Stops at the first non-None result; return None to let other plugins decide.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------
# Execution modes.
# ---------------------------------------------------------------------------------------------


@_spec(firstresult=True)
def tickloop_route_action(session: Session, action: Action, mode: str, config: Config) -> str | None:
    """Called for every value- or signature-producing action an agent (or a closer) takes,
    before it runs.

    The built-in router (plugin ``routing``) answers ``"execute"`` in auto mode and
    ``"suggest"`` in manual mode and is registered ``trylast``, so any plugin can decide first:
    the example plugin ``notional-guard`` suggests any action worth more than
    ``[routing] manual_above_usd``, even in auto mode.

    :param session: the :class:`tickloop.sessions.Session` the action belongs to.
    :param action: the :class:`tickloop.actions.Action`: ``venue``, ``kind`` (``order``,
        ``cancel``, ``transfer``, ``redeem`` ...), ``method``, ``params`` and ``notional_usd``.
    :param mode: the session's execution mode, ``"auto"`` or ``"manual"``.
    :param config: the runtime's :class:`tickloop.config.Config` (for a router's own settings).
    :returns: ``"execute"`` to execute now, ``"suggest"`` to store a suggestion for a person to
        approve, or ``None`` to let another plugin decide.

    Stops at the first non-None result; return None to let other plugins decide.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle events. Called in the process that made the change, after it is committed.
# ---------------------------------------------------------------------------------------------


@_spec
def tickloop_session_transitioned(session: Session, transition: Transition) -> None:
    """Called after a session changed state (start, pause, resume, stop, unwind, unwound).

    :param session: the session as it is after the change.
    :param transition: the :class:`tickloop.sessions.Transition` that was recorded: ``action``,
        ``from_state``, ``to_state``, ``at`` and ``reason``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_session_held(session: Session, hold: Hold | None) -> None:
    """Called after reconciliation held a session (its ledger and a venue disagree, so the
    scheduler stops running it) or released it (they agree again), for example to alert
    someone.

    :param session: the session held or released (its state does not change).
    :param hold: the :class:`tickloop.sessions.Hold` (``reason``: the differences, ``since``),
        or None when the hold was released.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_suggestion_created(session: Session, suggestion: Suggestion) -> None:
    """Called after a manual-mode action was stored as a suggestion (in the process running the
    agent), for example to notify the person who approves it.

    :param session: the session whose agent proposed it.
    :param suggestion: the new :class:`tickloop.suggestions.Suggestion`, ``status == "pending"``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_suggestion_decided(session: Session, suggestion: Suggestion) -> None:
    """Called after a suggestion was approved and executed (or failed), rejected or expired.

    :param session: the session the suggestion belongs to.
    :param suggestion: the :class:`tickloop.suggestions.Suggestion` as it is now: ``executed``,
        ``failed`` (with ``error``), ``rejected`` or ``expired``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_action_executed(session: Session, action: Action, execution: Execution) -> None:
    """Called after a venue executed an action (auto mode, or an approved suggestion) and its
    fills were booked to the session's ledger.

    :param session: the session the action belongs to.
    :param action: the :class:`tickloop.actions.Action` that was executed.
    :param execution: the venue's :class:`tickloop.actions.Execution`: ``data``, ``error``
        (set when the venue refused), ``fills`` and ``order_ids``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_run_started(session: Session, run: Run) -> None:
    """Called after a run was recorded as started and before its agent function is invoked.

    :param session: the session the run belongs to.
    :param run: the :class:`tickloop.runs.Run`, with ``status == "running"``.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_run_finished(session: Session, run: Run) -> None:
    """Called after a run's result was committed: succeeded, failed, timed out or skipped.

    :param session: the session the run belongs to, with its next run time already set.
    :param run: the finished :class:`tickloop.runs.Run`, with its error, traceback and logs.
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


@_spec
def tickloop_run_missed(session: Session, scheduled_at: Any, policy: str) -> None:
    """Called when runs were missed while the runtime was down (an outage) and are not run.

    With the ``coalesce`` policy the missed runs become one run and this hook is not called;
    with ``skip`` it is called once per session, and a ``skipped`` run is recorded.

    :param session: the session whose runs were missed.
    :param scheduled_at: the first missed scheduled time (a timezone-aware datetime).
    :param policy: the missed-run policy in force (``"skip"``).
    :returns: nothing; the return value is ignored.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------------------
# Running agent code. Called in the process that executes the run (a worker process for the
# ``process`` executor), so implementations must not rely on the parent's state.
# ---------------------------------------------------------------------------------------------


@_spec(firstresult=True)
def tickloop_run_call(job: RunJob, context: AgentContext, function: Callable[..., Any]) -> RunOutcome | None:
    """Called to invoke the agent's ``run`` or ``unwind`` for one run.

    The built-in implementation (``trylast``) calls ``function`` with the context (and, for an
    unwind, the portfolio), catches what it raises and returns the outcome. Use
    ``@hookimpl(wrapper=True)`` to wrap every run for timing, metrics or locks: put the work
    after ``outcome = yield`` in ``try/finally`` and return ``outcome``.

    :param job: the :class:`tickloop.runner.RunJob` being executed.
    :param context: the fresh :class:`tickloop.context.AgentContext` built for this run.
    :param function: the agent's ``run`` or ``unwind`` function.
    :returns: the :class:`tickloop.runner.RunOutcome`, or ``None`` to let the next
        implementation invoke the agent.

    Stops at the first non-None result; return None to let other plugins decide.

    .. versionadded:: 0.1
    """


HOOK_NAMES = tuple(name for name in dict(globals()) if name.startswith(f"{NAME}_"))
