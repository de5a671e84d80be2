"""Wallets, their paper funds and their sessions' allocations (the ``WalletStore`` part of ``SqlStateStore``).

A wallet row says where its key comes from, never the key. Addresses match in any letter case.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from tickloop.errors import TickloopError
from tickloop.wallets import Wallet
from tickloop_sql.connections import Connections
from tickloop_sql.sessions import OPEN
from tickloop_sql.tables import lower, sessions, utc, wallet_funds, wallets


class SqlWallets(Connections):
    """Wallets, funds by ``(network, asset)``, and what open sessions allocated of them."""

    def add_wallet(self, wallet: Wallet) -> Wallet:
        row = {"address": wallet.address, "kind": wallet.kind, "created_at": utc(wallet.created_at),
               "key_env": wallet.key_env, "keystore": wallet.keystore, "password_env": wallet.password_env,
               "label": wallet.label}
        with self._writer.begin() as conn:
            known = conn.execute(select(wallets.c.address).where(
                lower(wallets.c.address) == wallet.address.lower())).first()
            if known is not None:
                raise TickloopError(f"wallet {known.address} is already added")
            conn.execute(insert(wallets), [row])
        return wallet

    def get_wallet(self, address: str) -> Wallet | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(wallets).where(lower(wallets.c.address) == address.lower())).first()
        return Wallet.from_row(row) if row is not None else None

    def list_wallets(self) -> list[Wallet]:
        with self.engine.connect() as conn:
            return [Wallet.from_row(row) for row in conn.execute(select(wallets).order_by(wallets.c.created_at))]

    def fund_wallet(self, address: str, network: str, asset: str, amount: int, *,
                    only_if_unfunded: bool = False) -> int:
        f = wallet_funds.c
        key = (f.address == address, f.network == network, f.asset == asset.lower())
        with self._writer.begin() as conn:
            current = conn.execute(select(f.amount).where(*key)).scalar()
            if current is not None and only_if_unfunded:
                return int(current)
            total = int(current or 0) + int(amount)
            if current is None:
                conn.execute(insert(wallet_funds), [{"address": address, "network": network, "asset": asset.lower(),
                                                     "amount": str(total)}])
            else:
                conn.execute(update(wallet_funds).where(*key).values(amount=str(total)))
        return total

    def wallet_funds(self, address: str) -> dict[tuple[str, str], int]:
        f = wallet_funds.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.network, f.asset, f.amount).where(lower(f.address) == address.lower()))
            return {(network, asset): int(amount) for network, asset, amount in rows}

    def allocated(self, address: str) -> dict[tuple[str, str], int]:
        s = sessions.c
        out: dict[tuple[str, str], int] = {}
        with self.engine.connect() as conn:
            for network, asset, amount in conn.execute(select(s.allocation_network, s.allocation_asset, s.allocation)
                                                       .where(lower(s.wallet) == address.lower(),
                                                              s.state.in_(OPEN), s.allocation.is_not(None))):
                key = (network or "", asset or "")
                out[key] = out.get(key, 0) + int(amount)
        return out
