"""The runtime's clock: the real one, or one injected (tests, the demo, backtests), which a
``tick(now)`` pins so that everything inside it reads ``now``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from tickloop.errors import TickloopError

UTC = UTC


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive time is refused, because its zone would be a guess."""
    if value.tzinfo is None:
        raise TickloopError(f"times must be timezone-aware, got {value.isoformat()} without a timezone")
    return value.astimezone(UTC)


def _real() -> datetime:
    return datetime.now(UTC)


class Clock:
    """What time it is for the runtime. ``injected`` clocks also drive agents' clocks in unwinds."""

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self.source = source or _real
        self.injected = source is not None
        #: the ``now`` of the tick in progress (None: the source's time)
        self.pinned: datetime | None = None

    def now(self) -> datetime:
        return self.pinned or self.source()

    def at(self, now: datetime | None) -> datetime:
        """``now`` in UTC when given, else the current time."""
        return utc(now) if now is not None else self.now()

    @contextlib.contextmanager
    def pin(self, at: datetime | None) -> Iterator[None]:
        """The clock reads ``at`` inside the block (nothing changes for None)."""
        previous = self.pinned
        if at is not None:
            self.pinned = at
        try:
            yield
        finally:
            self.pinned = previous
