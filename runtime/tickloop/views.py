"""Read models: what the CLI, the HTTP API and the dashboard show, computed once, in one place.

Each is a frozen record built by a :class:`tickloop.runtime.Runtime` method from the store and the
venues; the front ends only render them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from tickloop.portfolio import Portfolio
from tickloop.runs import Run
from tickloop.sessions import Session, Transition
from tickloop.wallets import Wallet

if TYPE_CHECKING:
    from tickloop.sessions import Hold


@attrs.frozen
class SharedMargin:
    """Combined margin use of the open sessions that trade on one wallet's perp account."""

    margin_used: Decimal
    account_value: Decimal
    ratio: Decimal  # margin_used / account_value; Infinity without collateral
    source: str  # "venue", or how the ledgers estimated it
    sessions: tuple[int, ...]
    threshold: float  # [wallets] margin_warning
    warning: bool  # several sessions share the account at or above the threshold


@attrs.frozen
class SessionView:
    """A session with everything ``sessions show`` and the dashboard's session page display."""

    session: Session
    transitions: tuple[Transition, ...]
    recent_runs: tuple[Run, ...]  # newest last
    upcoming: tuple[datetime, ...]  # the next scheduled points (one for a rolling schedule)
    portfolio: Portfolio
    pending_suggestions: int
    margin: SharedMargin | None
    hold: Hold | None

    @property
    def left_open(self) -> bool:
        """A stopped session that still holds positions on the venues."""
        return self.session.state == "stopped" and bool(self.portfolio.positions)


@attrs.frozen
class WalletAsset:
    """One asset of a wallet: its funds (None: not tracked by tickloop), what sessions hold of it."""

    network: str
    asset: str
    symbol: str | None
    decimals: int | None
    funds: int | None
    allocated: int

    @property
    def free(self) -> int | None:
        return None if self.funds is None else self.funds - self.allocated


@attrs.frozen
class WalletView:
    """A wallet, where its key comes from (never the key), its assets and its open sessions."""

    wallet: Wallet
    assets: tuple[WalletAsset, ...]
    open_sessions: tuple[int, ...]
