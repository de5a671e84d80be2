"""Reconciliation: each account on its venue against the sum of its sessions' ledgers.

An *account* is one wallet on one venue (a Hyperliquid account, a Polymarket wallet), shared by
every session that trades with that wallet. Its positions must equal the sum of those sessions'
ledger holdings, and every open order on it must be one a session placed. When they do not (a
fill booked nowhere, a position opened outside tickloop, an order tickloop does not know):

- the difference is **attributed** to the sessions trading that asset on that account (their
  ledgers hold it, or held it), open sessions first; what no session explains is reported as
  **unexplained** account residue;
- a session a difference is attributed to is **held** (:class:`tickloop.sessions.Hold`): the
  scheduler does not run it, until the user **adopts** the venue's view or **closes** the
  difference (:mod:`tickloop.adjustments`), or a later reconciliation finds no difference.

A venue that cannot be reached is reported, never taken for a difference; an account with an
order in flight (an intent ``sending``) or that changes while it is read is reported as busy.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from tickloop.actions import Fill
from tickloop.intents import SENDING
from tickloop.ledger import TRADES, Book, LedgerEntry
from tickloop.portfolio import decimal_text
from tickloop.recovery import RecoveryReport, recover

if TYPE_CHECKING:
    from tickloop.sessions import Hold, Session
    from tickloop.venues import Gateway

AGREES = "agrees"
DIFFERS = "differs"
UNREACHABLE = "unreachable"
BUSY = "busy"
UNSUPPORTED = "unsupported"
#: Seconds between the two reads of an account that differs: a difference is reported only when
#: both reads agree on it (a fill landing between the venue read and the ledger read is not one).
SETTLE_SECONDS = 0.25
_EPSILON = Decimal("1e-9")


def num(value: Decimal) -> str:
    return decimal_text(value) or "0"


@attrs.frozen
class OpenOrder:
    """An order open on a venue: its id, instrument and signed remaining size (buy > 0)."""

    order_id: str
    asset_key: str
    coin: str
    size: Decimal


@attrs.frozen
class AccountView:
    """What a venue reports for one account (``Venue.account_view``): ``positions`` as
    :class:`Fill` objects describing each instrument held (signed ``size``, ``price`` the
    venue's current price, and everything a ledger entry needs), and the open ``orders``."""

    positions: tuple[Fill, ...] = ()
    orders: tuple[OpenOrder, ...] = ()


@attrs.frozen
class Difference:
    """One way an account and its sessions' ledgers disagree."""

    venue: str
    wallet: str
    asset_key: str
    coin: str
    venue_size: Decimal
    ledger_size: Decimal
    #: the sessions it is attributed to; empty: unexplained account residue
    sessions: tuple[int, ...] = ()
    #: an open order no session placed (then the sizes are the order's remaining size and 0)
    order: OpenOrder | None = None
    #: the venue's description of the instrument (a ledger entry is built from it)
    position: Fill | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def size(self) -> Decimal:
        return self.venue_size - self.ledger_size

    def matches(self, asset: str) -> bool:
        wanted = asset.lower()
        return wanted in (self.asset_key.lower(), self.coin.lower()) or (
            self.order is not None and self.order.order_id.lower() == wanted)

    def describe(self) -> str:
        where = f"on account {self.wallet}"
        owners = ", ".join(str(s) for s in self.sessions)
        if self.order is not None:
            text = (f"{self.venue} order {self.order.order_id} ({self.coin} {num(self.order.size)}) {where} was"
                    " placed by no session")
            return text + (f"; sessions trading {self.coin}: {owners}" if owners else "; run tickloop reconcile")
        if not self.sessions:
            return (f"{self.venue} {self.coin} {num(self.size)} {where} is in no session's ledger;"
                    " run tickloop reconcile")
        return (f"{self.venue} {self.coin} {where}: the venue holds {num(self.venue_size)}, the ledger of session(s)"
                f" {owners} {num(self.ledger_size)} (difference {'+' if self.size > 0 else ''}{num(self.size)})")

    def key(self) -> tuple[Any, ...]:
        return (self.venue, self.asset_key, self.order.order_id if self.order else None, self.size)


@attrs.frozen
class AccountReport:
    """One account compared: ``status`` is agrees, differs, unreachable, busy or unsupported."""

    wallet: str
    venue: str
    status: str
    differences: tuple[Difference, ...] = ()
    error: str | None = None

    @property
    def compared(self) -> bool:
        return self.status in (AGREES, DIFFERS)

    def describe(self) -> str:
        head = f"{self.venue} account {self.wallet}: {self.status}"
        return head + (f" ({self.error})" if self.error else "")


@attrs.frozen
class Reconciliation:
    """What one reconciliation found and did."""

    accounts: tuple[AccountReport, ...] = ()
    held: tuple[int, ...] = ()
    released: tuple[int, ...] = ()
    recovery: RecoveryReport = attrs.field(factory=RecoveryReport)

    @property
    def differences(self) -> tuple[Difference, ...]:
        return tuple(d for a in self.accounts for d in a.differences)

    @property
    def unexplained(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if not d.sessions)

    def for_session(self, session_id: int) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if session_id in d.sessions)

    @property
    def clean(self) -> bool:
        """Every account compared and agreeing."""
        return all(a.status in (AGREES, UNSUPPORTED) for a in self.accounts)


# -- comparing ---------------------------------------------------------------------------------


def compare_account(gateway: Gateway, wallet: str, venue_name: str, *,
                    settle: float = SETTLE_SECONDS) -> AccountReport:
    """Compare one account with its sessions' ledgers (twice when they differ; see SETTLE_SECONDS)."""
    venue = gateway.venues.get(venue_name)
    if venue is None or getattr(venue, "account_view", None) is None:
        reason = f"no {venue_name} venue is installed" if venue is None else \
            f"the {venue_name} venue cannot report accounts (it has no account_view)"
        return AccountReport(wallet, venue_name, UNSUPPORTED, error=reason)
    first = _read(gateway, venue, wallet, venue_name)
    if first.status != DIFFERS:
        return first
    time.sleep(settle)
    second = _read(gateway, venue, wallet, venue_name)
    if second.status != DIFFERS:
        return second
    if sorted(d.key() for d in first.differences) != sorted(d.key() for d in second.differences):
        return AccountReport(wallet, venue_name, BUSY, error="the account changed while it was read; try again")
    return second


def _read(gateway: Gateway, venue: Any, wallet: str, venue_name: str) -> AccountReport:
    store = gateway.store
    in_flight = store.intents(wallet=wallet, venue=venue_name, status=SENDING, limit=1)
    if in_flight:
        return AccountReport(wallet, venue_name, BUSY, error=f"{in_flight[0].describe()} is in flight")
    last = store.intents(wallet=wallet, venue=venue_name, newest=True, limit=1)
    sessions = store.list_sessions(wallet=wallet)
    try:
        sync = getattr(venue, "sync_fills", None)
        if sync is not None and sessions:
            sync(sessions, gateway)  # late fills of resting orders are booked before comparing
        view: AccountView = venue.account_view(store.get_wallet(wallet) or wallet)
    except Exception as exc:
        return AccountReport(wallet, venue_name, UNREACHABLE, error=f"{type(exc).__name__}: {exc}")
    entries = store.ledger([s.id for s in sessions])
    books = Book.per_session(entries)
    # What the ledger knows of an instrument the venue no longer holds (to book an adjustment).
    templates = {e.asset_key: _template(e) for e in entries if e.venue == venue_name and e.kind in TRADES}
    after = store.intents(wallet=wallet, venue=venue_name, after_id=last[0].id if last else 0, limit=1)
    if after:
        return AccountReport(wallet, venue_name, BUSY, error=f"{after[0].describe()} was sent while comparing")
    known = {order_id for s in sessions for _, order_id in store.session_orders(s.id, venue_name)}
    found = differences(venue_name, wallet, view, books, {s.id: s for s in sessions}, known, templates)
    return AccountReport(wallet, venue_name, DIFFERS if found else AGREES, tuple(found))


def differences(venue_name: str, wallet: str, view: AccountView, books: dict[int, Book],
                sessions: dict[int, Session], known_orders: set[str],
                templates: dict[str, Fill] | None = None) -> list[Difference]:
    """The differences between a venue's view of an account and its sessions' books
    (``templates``: instruments the venue holds none of, as the ledger describes them)."""
    held: dict[str, Decimal] = defaultdict(Decimal)
    traders: dict[str, list[int]] = defaultdict(list)
    names: dict[str, str] = {}
    for session_id, book in sorted(books.items()):
        for h in book.holdings.values():
            if h.venue == venue_name:
                held[h.asset_key] += h.size
                traders[h.asset_key].append(session_id)
                names[h.asset_key] = h.coin
    on_venue = {p.asset_key: p for p in view.positions}

    def owners(asset_key: str) -> tuple[int, ...]:
        ids = traders.get(asset_key, [])
        open_ids = [i for i in ids if i in sessions and sessions[i].is_open]
        return tuple(open_ids or ids)

    found = []
    for asset_key in sorted(set(held) | set(on_venue)):
        position = on_venue.get(asset_key)
        venue_size = position.size if position is not None else Decimal(0)
        if abs(venue_size - held.get(asset_key, Decimal(0))) <= _EPSILON:
            continue
        coin = position.coin if position is not None else names.get(asset_key, asset_key)
        found.append(Difference(venue_name, wallet, asset_key, coin, venue_size, held.get(asset_key, Decimal(0)),
                                owners(asset_key), position=position or (templates or {}).get(asset_key)))
    for order in view.orders:
        if order.order_id not in known_orders:
            found.append(Difference(venue_name, wallet, order.asset_key, order.coin, order.size, Decimal(0),
                                    owners(order.asset_key), order=order))
    return found


# -- reconciling -------------------------------------------------------------------------------


def reconcile(gateway: Gateway, *, wallets: Iterable[str] | None = None, hold: bool = True,
              settle: float = SETTLE_SECONDS, on_hold: Any = None) -> Reconciliation:
    """Recover what dead processes left, compare every account sessions trade on (or those of
    ``wallets``), and hold or release sessions (``hold=False``: only report).
    ``on_hold(session_id, hold_or_None)`` is called for every hold placed or released."""
    recovery = recover(gateway)
    only = {w.lower() for w in wallets} if wallets is not None else None
    accounts = sorted(a for a in gateway.store.trading_accounts() if only is None or a[0].lower() in only)
    reports = tuple(compare_account(gateway, wallet, venue, settle=settle) for wallet, venue in accounts)
    held: list[int] = []
    released: list[int] = []
    if hold:
        held, released = _apply_holds(gateway, reports, on_hold)
    return Reconciliation(reports, tuple(held), tuple(released), recovery)


def _apply_holds(gateway: Gateway, reports: Sequence[AccountReport], on_hold: Any) -> tuple[list[int], list[int]]:
    store = gateway.store
    attributed: dict[int, list[Difference]] = defaultdict(list)
    for report in reports:
        for d in report.differences:
            for session_id in d.sessions:
                attributed[session_id].append(d)
    at = gateway.clock()
    held = []
    for session_id, found in sorted(attributed.items()):
        hold = store.hold(session_id, reason="; ".join(d.describe() for d in found), at=at)
        held.append(session_id)
        if on_hold is not None:
            on_hold(session_id, hold)
    # A hold is released only when every account of the session's wallet was compared.
    by_wallet: dict[str, list[AccountReport]] = defaultdict(list)
    for report in reports:
        by_wallet[report.wallet.lower()].append(report)
    released = []
    for session_id in sorted(store.holds()):
        if session_id in attributed:
            continue
        session = store.get_session(session_id)
        compared = by_wallet.get(session.wallet.lower())
        if compared and all(r.compared or r.status == UNSUPPORTED for r in compared) and store.release(session_id):
            released.append(session_id)
            if on_hold is not None:
                on_hold(session_id, None)
    return held, released


def _template(entry: LedgerEntry) -> Fill:
    return Fill(venue=entry.venue or "", network=entry.network, asset_key=entry.asset_key, coin=entry.coin or "",
                size=Decimal(0), price=entry.price or Decimal(0), contract=entry.contract or "perp",
                cash_network=entry.cash_network or "", cash_asset=entry.cash_asset or "",
                cash_symbol=entry.cash_symbol or "USDC", cash_decimals=entry.cash_decimals or 6, meta=entry.meta)


def hold_text(hold: Hold) -> str:
    return (f"held since {hold.since.isoformat()}: {hold.reason}; resolve with tickloop reconcile adopt|close"
            f" {hold.session_id}")
