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
ends the worker.
"""

from __future__ import annotations

from typing import Any

from tickloop import runs
from tickloop.untrusted import UntrustedData, loads as untrusted_loads

#: Largest message a worker may send (bytes); a larger one ends the worker.
MAX_MESSAGE = 64 * 2**20

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
