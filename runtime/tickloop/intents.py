"""Durable intents: every action is recorded, with a client id, before a venue sees it.

An order signed with someone's key must never execute twice and its fills must never be lost,
whatever process dies when. So :meth:`tickloop.venues.Gateway.execute` first commits an
:class:`Intent` (``sending``): the session, the venue, the serialised action, the client id the
venue will know the order by (Hyperliquid's ``cloid``, Polymarket's order hash), the suggestion
it executes, and its **owner**, the process that sends it. The venue's answer is then booked
(fills, resting orders) together with the intent's end (``executed`` or ``failed``) in one
transaction.

An intent still ``sending`` whose owner died is recovered (:mod:`tickloop.recovery`) by asking
the venue what it knows of that client id (:class:`Lookup`): what filled is booked, exactly once
(the intent's status is a compare-and-set in the booking transaction), and what never reached
the venue is failed with the reason. Nothing is ever sent again.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs

from tickloop.actions import Action, Execution


class IntentStatus(enum.StrEnum):
    SENDING = "sending"
    EXECUTED = "executed"
    FAILED = "failed"


SENDING, EXECUTED, FAILED = IntentStatus
STATUSES = tuple(IntentStatus)


def new_client_id() -> str:
    """A fresh client order id: 16 random bytes as ``0x`` + 32 hex digits (Hyperliquid's cloid shape)."""
    return "0x" + secrets.token_hex(16)


class Found(enum.StrEnum):
    """What a venue knows of an action it was asked about by client id."""

    FILLED = "filled"  # the order completed: its fills are in the lookup's execution
    RESTING = "resting"  # the order rests on the book (fills so far, and its id, in the execution)
    CANCELLED = "cancelled"  # the order ended (cancelled, expired, refused after placing), fills so far
    NOT_FOUND = "not_found"  # the venue never saw it: it was not placed
    UNKNOWN = "unknown"  # the venue cannot tell for this kind of action (the reason says why)


@attrs.frozen
class Lookup:
    """A venue's answer to ``lookup(action, wallet, client_id)``.

    ``execution`` is what executing the action produced as far as the venue can tell now, in the
    shape :meth:`Venue.execute` returns (``data``, ``error``, ``fills``, ``order_ids``); it is
    booked like an answer that arrived. For ``NOT_FOUND`` and ``UNKNOWN`` it is ignored and
    ``reason`` says why.
    """

    found: Found
    execution: Execution = attrs.field(factory=Execution)
    reason: str = ""

    @classmethod
    def not_found(cls, reason: str = "") -> Lookup:
        return cls(Found.NOT_FOUND, reason=reason)

    @classmethod
    def unknown(cls, reason: str) -> Lookup:
        return cls(Found.UNKNOWN, reason=reason)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def _process_start(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` of a live process (Linux), else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    # After the command name: field 3 (state) is fields[0], field 22 (starttime) is fields[19].
    return (fields[0], fields[19]) if len(fields) > 19 else None


@lru_cache(maxsize=8)
def _current(pid: int) -> Owner:  # keyed by pid: a forked child is another owner
    found = _process_start(pid)
    started = f"{_boot_id()}-{found[1]}" if found else ""
    return Owner(host=socket.gethostname(), pid=pid, started=started)


@attrs.frozen
class Owner:
    """The process that sends an intent (or approved a suggestion): host, pid and start time,
    so another process can tell whether it is still alive after the pid was reused."""

    host: str
    pid: int
    started: str = ""  # "<boot id>-<start ticks>" on Linux; "" where it cannot be read

    @classmethod
    def current(cls) -> Owner:
        return _current(os.getpid())

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner recorded as ``str(owner)`` (None for an empty or foreign value)."""
        if not text:
            return None
        host, _, rest = text.rpartition("|")
        pid, _, started = rest.partition("/")
        if not host or not pid.isdigit():
            return None
        return cls(host=host, pid=int(pid), started=started)

    def __str__(self) -> str:
        return f"{self.host}|{self.pid}/{self.started}"

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"

    def alive(self) -> bool | None:
        """Whether the process still runs: None when it runs on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        if self.pid == os.getpid() and (not self.started or self.started == Owner.current().started):
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, under another user
        found = _process_start(self.pid)
        if found is None:
            return True  # no /proc: the pid exists, which is all that can be told
        state, ticks = found
        if state in ("Z", "X"):
            return False  # killed, not yet reaped by its parent
        return not self.started or self.started == f"{_boot_id()}-{ticks}"


@attrs.frozen
class NewIntent:
    """What :meth:`StateStore.begin_intent` records before an action is sent."""

    session_id: int
    wallet: str
    venue: str
    action: Action
    client_id: str
    owner: str
    at: datetime
    suggestion_id: int | None = None


@attrs.frozen
class Intent:
    """One action on its way to a venue, or what became of it."""

    id: int
    session_id: int
    wallet: str
    venue: str
    action: Action
    client_id: str
    owner: str
    status: IntentStatus = attrs.field(converter=IntentStatus)
    created_at: datetime
    suggestion_id: int | None = None
    finished_at: datetime | None = None
    result: Any = None  # the execution's data (JSON), for an approved suggestion's result
    error: str | None = None

    @property
    def owner_process(self) -> Owner | None:
        return Owner.parse(self.owner)

    def describe(self) -> str:
        return f"intent {self.id} ({self.action.describe()}, client id {self.client_id})"
