"""Resolving what reconciliation found, for one session (``tickloop reconcile adopt|close``).

- **adopt**: the venue's view is booked to the session's ledger, each position difference as an
  explicit ``adjustment`` entry at the venue's price (its ``note`` says why), each open order no
  session placed as the session's;
- **close**: the difference is booked as adopt does, then an order that trades it away (or the
  cancel of the unknown order) is submitted through the gateway, routed like every action (a
  suggestion in manual mode), so that afterwards the ledger and the venue agree.

Both compare the session's accounts afresh first (refusing, with nothing changed, when a venue
cannot be read) and reconcile its wallet again afterwards, which releases its hold when nothing
else differs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from tickloop.errors import TickloopError
from tickloop.ledger import LedgerEntry
from tickloop.reconcile import (
    BUSY,
    SETTLE_SECONDS,
    UNREACHABLE,
    Difference,
    Reconciliation,
    compare_account,
    num,
    reconcile,
)
from tickloop.recovery import recover

if TYPE_CHECKING:
    from tickloop.results import Result
    from tickloop.sessions import Session
    from tickloop.venues import Gateway


@attrs.frozen
class Resolution:
    """What ``adopt`` or ``close`` did for one session."""

    session_id: int
    resolved: tuple[Difference, ...]
    booked: tuple[str, ...] = ()  # the adjustments and adopted orders, described
    submitted: tuple[tuple[str, Any], ...] = ()  # (action described, its Result)
    after: Reconciliation = attrs.field(factory=Reconciliation)

    @property
    def released(self) -> bool:
        return self.session_id in self.after.released or not self.after.for_session(self.session_id)


def _selected(gateway: Gateway, session: Session, asset: str | None, settle: float) -> list[Difference]:
    """The differences of ``session``'s accounts it may resolve (``asset``: only that one, which
    may be unexplained residue of its wallet); refuses with the reason when there are none."""
    recover(gateway, session_ids=[session.id])
    reports = [compare_account(gateway, wallet, venue, settle=settle)
               for wallet, venue in sorted(gateway.store.trading_accounts())
               if wallet.lower() == session.wallet.lower()]
    blocked = [r for r in reports if r.status in (UNREACHABLE, BUSY)]
    if blocked:
        raise TickloopError(f"cannot compare {blocked[0].venue} account {blocked[0].wallet} now: {blocked[0].error};"
                            " nothing was changed")
    found = [d for r in reports for d in r.differences]
    mine = [d for d in found if session.id in d.sessions]
    if asset is not None:
        mine = [d for d in found if d.matches(asset) and (session.id in d.sessions or not d.sessions)]
    if not mine:
        what = f" in {asset!r}" if asset is not None else ""
        others = "; ".join(d.describe() for d in found)
        raise TickloopError(f"session {session.id} has no difference with the venues{what}; nothing was changed"
                            + (f" (differences on its wallet: {others})" if others else ""))
    return mine


def adopt(gateway: Gateway, session: Session, asset: str | None = None, *, settle: float = SETTLE_SECONDS,
          on_hold: Any = None) -> Resolution:
    """Book the venue's view into ``session``'s ledger: each position difference as an
    adjustment entry at the venue's price, each unknown open order as the session's."""
    chosen = _selected(gateway, session, asset, settle)
    booked = [_book(gateway, session, d, "adopted from the venue (tickloop reconcile adopt)") for d in chosen]
    after = reconcile(gateway, wallets=[session.wallet], settle=settle, on_hold=on_hold)
    return Resolution(session.id, tuple(chosen), tuple(booked), (), after)


def close(gateway: Gateway, session: Session, asset: str | None = None, *, settle: float = SETTLE_SECONDS,
          on_hold: Any = None) -> Resolution:
    """Trade each difference away: book it (as adopt does), then submit the venue's offsetting
    order, or the cancel of an unknown order, through the gateway (routed: manual mode makes
    it a suggestion)."""
    chosen = _selected(gateway, session, asset, settle)
    actions = []
    for d in chosen:
        venue = gateway.venues.get(d.venue)
        maker = getattr(venue, "cancel_action" if d.order is not None else "offset_action", None)
        if maker is None:
            raise TickloopError(f"the {d.venue} venue cannot build an order to close {d.coin}; adopt it instead"
                                f" (tickloop reconcile adopt {session.id} --asset {d.asset_key}); nothing was changed")
        try:
            if d.order is not None:
                actions.append(maker(session, d.order))
            elif d.position is not None:
                actions.append(maker(session, attrs.evolve(d.position, size=d.size)))
            else:
                raise ValueError("the venue reported neither a position nor an order")
        except ValueError as exc:
            raise TickloopError(f"cannot close {d.describe()}: {exc}; adopt it instead (tickloop reconcile adopt"
                                f" {session.id} --asset {d.asset_key}); nothing was changed") from None
    booked, submitted = [], []
    for d, action in zip(chosen, actions):
        booked.append(_book(gateway, session, d, "booked to be closed (tickloop reconcile close)"))
        result: Result = gateway.submit(session, action)
        submitted.append((action.describe(), result))
    after = reconcile(gateway, wallets=[session.wallet], settle=settle, on_hold=on_hold)
    return Resolution(session.id, tuple(chosen), tuple(booked), tuple(submitted), after)


def _book(gateway: Gateway, session: Session, d: Difference, why: str) -> str:
    at = gateway.clock()
    if d.order is not None:
        gateway.store.record_ledger([], orders=[(d.venue, d.order.order_id, session.id)])
        return f"order {d.order.order_id} ({d.coin}) is now session {session.id}'s"
    if d.position is None:
        raise TickloopError(f"nothing describes {d.coin} on {d.venue} to book an adjustment for session {session.id};"
                            " nothing was changed")
    fill = attrs.evolve(d.position, size=d.size, fee=Decimal(0), order_id=None)
    if d.venue_size == 0:  # described by the ledger: price it at the venue's mark when it has one
        marks = getattr(gateway.venues.get(d.venue), "marks", None)
        try:
            price = marks([(fill.network, fill.asset_key)]).get((fill.network, fill.asset_key)) if marks else None
        except Exception:
            price = None
        fill = attrs.evolve(fill, price=price or fill.price)
    note = f"{why}: venue {num(d.venue_size)}, ledgers {num(d.ledger_size)}"
    gateway.store.record_ledger([LedgerEntry.adjustment(session.id, session.wallet, fill, at=at, note=note)])
    return f"{d.venue} {d.coin} {'+' if d.size > 0 else ''}{num(d.size)} at {num(fill.price)} ({note})"
