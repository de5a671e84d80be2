"""The runtime's safekeeping: recovery, reconciliation and holds (see :mod:`tickloop.recovery`
and :mod:`tickloop.reconcile`), behind :class:`tickloop.runtime.Runtime`'s methods of those names.

``serve`` recovers and reconciles when it starts, before it dispatches anything (so a run that
follows a crash sees the fills recovery booked), then recovers again every
``[runtime] recovery_interval_seconds`` (60 by default) for processes that died meanwhile, such
as a killed ``tickloop suggestions approve``. ``tickloop reconcile`` does both on demand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from tickloop import adjustments
from tickloop import reconcile as reconciling
from tickloop.errors import TickloopError
from tickloop.recovery import RecoveryReport, is_dead, recover
from tickloop.suggestions import APPROVED, EXECUTED, Suggestion, refusal

if TYPE_CHECKING:
    from tickloop.bootstrap import Parts
    from tickloop.scheduler import Scheduler
    from tickloop.sessions import Hold
    from tickloop.venues import Gateway

log = logging.getLogger("tickloop")


class Safekeeping:
    """Recovery, reconciliation and holds for one runtime; ``continue_unwind(session_id,
    run_here=)`` lets an unwinding session go on once its closing suggestion is executed."""

    def __init__(self, parts: Parts, scheduler: Scheduler, continue_unwind: Callable[..., None]) -> None:
        self.parts = parts
        self.store = parts.store
        self.scheduler = scheduler
        self._continue_unwind = continue_unwind
        self._next_recovery = 0.0

    @property
    def gateway(self) -> Gateway:
        return self.parts.gateway

    def _pinned(self, now: datetime | None) -> AbstractContextManager[None]:
        return self.parts.clock.pin(self.parts.clock.at(now) if now is not None else None)

    def recover(self, now: datetime | None = None) -> RecoveryReport:
        """Settle the intents and approved suggestions that dead processes left (asking the
        venues by client id); returns what was done."""
        with self._pinned(now):
            report = recover(self.gateway)
        self.after_recovery(report)
        return report

    def reconcile(self, now: datetime | None = None, *, wallets: Iterable[str] | None = None,
                  hold: bool = True) -> reconciling.Reconciliation:
        """Recover, then compare every account sessions trade on (or those of ``wallets``) with
        the sum of its sessions' ledgers; hold the sessions that disagree and release those that
        agree again (``hold=False``: only report)."""
        with self._pinned(now):
            found = reconciling.reconcile(self.gateway, wallets=wallets, hold=hold, on_hold=self.held)
        self.after_recovery(found.recovery)
        return found

    def adopt(self, session_id: int, asset: str | None = None, now: datetime | None = None) -> adjustments.Resolution:
        """Book the venue's view of the session's differences (or only ``asset``'s) into its
        ledger as adjustment entries; releases its hold when nothing else differs."""
        session = self.store.get_session(session_id)
        with self._pinned(now):
            return adjustments.adopt(self.gateway, session, asset, on_hold=self.held)

    def close_difference(self, session_id: int, asset: str | None = None,
                         now: datetime | None = None) -> adjustments.Resolution:
        """Book the session's differences (or ``asset``'s) and submit orders that trade them
        away, routed like the agent's own (manual mode: suggestions)."""
        session = self.store.get_session(session_id)
        with self._pinned(now):
            return adjustments.close(self.gateway, session, asset, on_hold=self.held)

    def holds(self) -> dict[int, Hold]:
        """Held sessions (not run by the scheduler until reconciled), by session id."""
        return self.store.holds()

    def held(self, session_id: int, hold: Hold | None) -> None:
        self.parts.notify("tickloop_session_held", session=self.store.get_session(session_id), hold=hold)

    def after_recovery(self, report: RecoveryReport) -> None:
        """A closing suggestion recovered as executed lets its unwinding session go on."""
        for item in report.suggestions:
            if item.status == EXECUTED:
                self._continue_unwind(item.session_id, run_here=not self.scheduler.serving)

    def start(self) -> None:
        """At serve start, before anything is dispatched: recover, reconcile, report."""
        self._next_recovery = time.monotonic() + self.parts.config.runtime.recovery_interval_seconds
        try:
            found = self.reconcile()
        except Exception:  # the runtime still serves; the next check tries again
            log.exception("recovery and reconciliation at start failed")
            return
        for item in found.recovery.intents + found.recovery.suggestions:
            log.warning("recovered %s", item.describe())
        for account in found.accounts:
            if account.status != reconciling.AGREES:
                log.warning("reconcile: %s", account.describe())
            for difference in account.differences:
                log.warning("reconcile: %s", difference.describe())

    def check(self) -> float:
        """In serve's loop: recover dead processes' work when the interval passed; returns the
        seconds until the next check."""
        interval = self.parts.config.runtime.recovery_interval_seconds
        left = self._next_recovery - time.monotonic()
        if left > 0:
            return left
        self._next_recovery = time.monotonic() + interval
        try:
            report = self.recover()
        except Exception:
            log.exception("periodic recovery failed")
            return interval
        for item in report.intents + report.suggestions:
            log.warning("recovered %s", item.describe())
        return interval

    def stuck_approval(self, current: Suggestion, at: datetime) -> str:
        """Why an ``approved`` suggestion cannot be approved again, after settling it when its
        approving process died."""
        if not is_dead(current.decided_by, current.decided_at, at):
            return refusal(current, at)
        report = recover(self.gateway, suggestion_ids=[current.id])
        self.after_recovery(report)
        now = self.gateway.suggestions.get(current.id)
        if now.status == APPROVED:
            waiting = "; ".join(r.detail for r in report.pending) or "its order is not settled yet"
            approved_at = current.decided_at.isoformat() if current.decided_at else "?"
            return (f"cannot approve suggestion {current.id}: it was approved at {approved_at} by a"
                    f" process that stopped while executing it, and what became of its order cannot be told now"
                    f" ({waiting}); run tickloop reconcile once the venue answers")
        return refusal(now, at) + " (its approving process had stopped; tickloop settled it by asking the venue)"

    def check_assets(self, session_id: int, assets: Iterable[str]) -> None:
        """Refuse an unwind of assets the session does not hold (nothing changes)."""
        positions = self.gateway.portfolio(session_id, marked=False).positions
        names = {p.assetKey.lower() for p in positions} | {p.coin.lower() for p in positions}
        unknown = [a for a in assets if str(a).lower() not in names]
        if unknown:
            held = ", ".join(f"{p.coin} ({p.venue}, asset {p.assetKey}, size {p.size})" for p in positions) or "none"
            raise TickloopError(f"session {session_id} holds no position {', '.join(repr(a) for a in unknown)};"
                                f" its positions: {held}; nothing was changed")

    def left_open(self, session_id: int) -> str:
        """What a session still holds, for a stop's audit trail ("" when flat)."""
        try:
            positions = self.gateway.portfolio(session_id, marked=False).positions
        except Exception:
            return ""
        return ", ".join(f"{p.venue} {p.coin} {p.size}" for p in positions)
