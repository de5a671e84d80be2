"""tickloop built-in plugin: executors, and the built-in way of calling an agent function.

Executors (``[runtime] executor``):

- ``inline`` (:mod:`tickloop_executors.inline`): runs the agent in the caller's thread. Cheapest,
  but it cannot stop a hung agent: the run timeout is not enforced.
- ``process`` (:mod:`tickloop_executors.process`): a pool of long-lived worker processes; each
  run has a timeout, and a hung or crashed worker is killed and replaced.

The built-in :func:`tickloop_run_call` (``trylast``) calls ``run(agent)`` or
``unwind(agent, portfolio)`` and turns whatever the agent raises into a failed
:class:`~tickloop.runner.RunOutcome`.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tickloop import hookimpl
from tickloop.registry import Backend
from tickloop.runs import FAILED, SUCCEEDED
from tickloop.text import storable

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop.context import AgentContext
    from tickloop.runner import RunEnvironment, RunJob, RunOutcome

#: Longest ``RunOutcome.error`` kept (characters); longer messages are cut with an ellipsis.
ERROR_LIMIT = 1000
#: Longest ``RunOutcome.traceback`` kept (characters); the end, where the error is, is kept.
TRACEBACK_LIMIT = 20_000


def _inline(config: Config, environment: RunEnvironment) -> Any:
    from tickloop_executors.inline import InlineExecutor

    return InlineExecutor(environment)


def _process(config: Config, environment: RunEnvironment) -> Any:
    from tickloop_executors.process import ProcessExecutor

    return ProcessExecutor(config, environment)


@hookimpl
def tickloop_register_executors(register: Callable[[Backend], None]) -> None:
    register(Backend(
        name="inline",
        factory=_inline,
        description="runs agents in the runtime's own thread; no timeout, no isolation",
    ))
    register(Backend(
        name="process",
        factory=_process,
        description="a pool of [runtime] workers processes, sandboxed where bubblewrap is installed;"
                    " enforces run_timeout_seconds, survives crashes",
    ))


@hookimpl(trylast=True)
def tickloop_run_call(job: RunJob, context: AgentContext, function: Callable[..., Any]) -> RunOutcome:
    """Call the agent: ``function(context)`` for a run, ``function(context, context.portfolio)``
    for an unwind (just ``function(context)`` when it takes one parameter).

    Whatever the agent raises (``Exception``, ``SystemExit``, ``KeyboardInterrupt``, any
    ``BaseException``) becomes a ``failed`` outcome with the error and traceback: agent code
    never stops the runtime. An ``async def`` function is run to completion with
    :func:`asyncio.run`.
    """
    from tickloop.runner import RunOutcome

    try:
        if job.kind == "unwind" and not _takes_one_argument(function):
            result = function(context, context.portfolio)
        else:
            result = function(context)
        if inspect.iscoroutine(result):
            import asyncio

            asyncio.run(result)
    except BaseException as exc:
        return failure(job.run_id, exc, logs=tuple(context.logs), skip_frames=1)
    return RunOutcome(job.run_id, SUCCEEDED, logs=tuple(context.logs))


def failure(run_id: int, exc: BaseException, *, logs: tuple = (), prefix: str = "",
            skip_frames: int = 0) -> RunOutcome:
    """A ``failed`` outcome for ``exc``: ``"<Type>: <message>"`` (cleaned and capped) and its
    traceback, without the first ``skip_frames`` frames (the caller's own)."""
    from tickloop.runner import RunOutcome

    return RunOutcome(run_id, FAILED, error=clean_text(prefix + describe(exc)),
                      traceback=format_traceback(exc, skip_frames=skip_frames), logs=logs)


def describe(exc: BaseException) -> str:
    """``"<Type>: <message>"``, or just ``"<Type>"`` when the message is empty."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break error reporting
        message = "<unprintable message>"
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def clean_text(text: str, limit: int = ERROR_LIMIT) -> str:
    """One line of printable text of at most ``limit`` characters: lone surrogates are escaped
    (``\\udcff``, as stored), line breaks and tabs become spaces, other non-printable characters
    are removed."""
    text = "".join(ch if ch.isprintable() else " " if ch in "\t\n\r\v\f" else ""
                   for ch in storable(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def format_traceback(exc: BaseException, *, skip_frames: int = 0, limit: int = TRACEBACK_LIMIT) -> str:
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # pragma: no cover - formatting failed (a broken __str__ in a chained exception)
        text = "".join(traceback.format_tb(tb)) + describe(exc) + "\n"
    if len(text) > limit:
        text = "… (traceback truncated)\n" + text[-limit:]
    return text


def _takes_one_argument(function: Callable[..., Any]) -> bool:
    """True when ``function`` accepts exactly one positional argument (and no ``*args``)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    positional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return False
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional == 1
