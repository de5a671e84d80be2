"""The messages between the runtime and a worker process, and how they are read.

Runtime → worker (pickled; the worker trusts the runtime)::

    ("hello", {"sys_path": [...], "cwd": str | None, "block": [...], "load": [...]})   once, first
    ("run", RunJob)                                        a run to execute
    ("reply", call_id, "ok" | "attr", value)               the answer to a call
    ("stop",)

Worker → runtime (read with :func:`loads`, which trusts nothing)::

    ("ready", pid)
    ("log", run_id, LogLine)
    ("call", run_id, permit, call_id, Call)                agent code asks the runtime
    ("done", run_id, RunOutcome)

A worker runs agent code, so what it sends is untrusted: :func:`loads` admits only plain data
and the records above (:mod:`tickloop.untrusted`), and a message over :data:`MAX_MESSAGE` bytes
ends the worker. Even a message that passes is believed only as far as it is valid: a call is
answered (:func:`reply`) only when it carries the permit of the run in progress, and a log line or
outcome (:func:`log_line`, :func:`reported_outcome`) is taken only in the shape the runtime
expects.
"""

from __future__ import annotations

import pickle
from typing import Any

from tickloop import runs
from tickloop.binding import RunBinding
from tickloop.channel import Call
from tickloop.results import Result
from tickloop.runner import RunJob, RunOutcome
from tickloop.runs import FAILED, SUCCEEDED, LogLine
from tickloop.untrusted import UntrustedData
from tickloop.untrusted import loads as untrusted_loads

#: Largest message a worker may send (bytes); a larger one ends the worker.
MAX_MESSAGE = 64 * 2**20

#: The levels of a log line.
LEVELS = frozenset({"info", "error", "debug"})

#: The records a worker's message may hold.
RECORDS = runs.RECORDS | frozenset({
    ("tickloop.runner", "RunOutcome"),
    ("tickloop.channel", "Call"),
    ("tickloop.channel", "Target"),
})

UntrustedMessage = UntrustedData


def loads(data: bytes) -> Any:
    """A worker's message; :class:`UntrustedMessage` for anything outside the protocol."""
    return untrusted_loads(data, RECORDS)


def reply(binding: RunBinding, message: tuple[Any, ...]) -> bytes:
    """The pickled answer to a ``call`` message, as the run the binding belongs to (or its refusal)."""
    _, run_id, permit, call_id, call = (message + (None,) * 5)[:5]
    if not isinstance(call, Call) or not isinstance(permit, str) or not binding.accepts(run_id, permit):
        answer: tuple[Any, ...] = ("reply", call_id, "ok", Result.fail("refused: this call does not come from"
                                                                       " the run in progress"))
    else:
        try:
            answer = ("reply", call_id, "ok", binding.handle(call))
        except AttributeError as exc:
            answer = ("reply", call_id, "attr", str(exc))
        except Exception as exc:  # bad arguments from agent code end here, never in the runtime
            answer = ("reply", call_id, "ok", Result.fail(f"{call.describe()} failed: {type(exc).__name__}: {exc}"))
    try:
        return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps(("reply", call_id, "ok", Result.fail(f"the answer cannot be sent: {exc}")))


def reported_outcome(job: RunJob, reported: Any) -> RunOutcome:
    """What a worker reported, as far as the runtime believes it: its own status (succeeded or
    failed), texts and log lines; never that closers ran (``closed``), which only the runtime knows."""
    if not isinstance(reported, RunOutcome) or reported.status not in (SUCCEEDED, FAILED):
        return RunOutcome(job.run_id, FAILED, error="the worker sent no valid outcome")
    logs = reported.logs if isinstance(reported.logs, tuple) else ()
    return RunOutcome(job.run_id, reported.status, error=_text(reported.error), traceback=_text(reported.traceback),
                      logs=tuple(line for line in map(log_line, logs) if line is not None))


def log_line(line: Any) -> LogLine | None:
    """A log line a worker sent, or None when it is not one."""
    if not isinstance(line, LogLine) or not hasattr(line.at, "tzinfo") or line.level not in LEVELS:
        return None
    return LogLine(line.at, line.level, str(line.message))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
