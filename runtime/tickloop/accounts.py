"""Wallet operations: adding wallets, funding paper ones, and the balance a session starts from.

:mod:`tickloop.wallets` holds what a wallet is and where its key comes from; this module holds
what the runtime does with wallets.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tickloop.errors import NotFoundError, TickloopError
from tickloop.ranges import is_raw_amount
from tickloop.wallets import (
    DEFAULT_PASSWORD_ENV,
    Wallet,
    WalletKind,
    address_from_env,
    address_from_keystore,
    new_paper_key,
)

if TYPE_CHECKING:
    from tickloop.agents import Agent
    from tickloop.bootstrap import Parts

_ETH_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SOL_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


def canonical_address(agent: Agent, wallet: str) -> str:
    """The wallet address in its canonical form (EIP-55 checksum for EVM addresses), so one
    wallet written in two letter cases is still one wallet."""
    kind = agent.manifest.walletType
    pattern = _SOL_ADDRESS if kind == "solana" else _ETH_ADDRESS
    if not isinstance(wallet, str) or not pattern.fullmatch(wallet):
        shape = "a base58 address" if kind == "solana" else "0x followed by 40 hex digits"
        raise TickloopError(f"wallet {wallet!r} is not a well-formed {kind} address ({shape});"
                            f" agent {agent.name!r} has walletType {kind!r}")
    if kind == "solana":
        return wallet
    from eth_utils import to_checksum_address

    return to_checksum_address(wallet)


def checked_allocation(agent: Agent, allocation: int | str | None) -> str | None:
    """An allocation in raw units of the agent's starting asset, at least its minimum."""
    if allocation is None:
        return None
    text = str(allocation)
    if not is_raw_amount(text):
        raise TickloopError(f"allocation {text!r} must be a whole number of raw units of the starting asset"
                            " (0 to 2**256 - 1)")
    asset = agent.manifest.startingAsset
    if asset is not None and int(text) < asset.minimum_amount:
        raise TickloopError(f"allocation {text} is below the agent's startingAsset.minimumAmount"
                            f" {asset.minimumAmount} ({asset.address} on {asset.network})")
    return text


class Accounts:
    """The wallets tickloop knows, and their funds."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def add(self, *, paper: bool = False, key_env: str | None = None, keystore: str | None = None,
            password_env: str | None = None, label: str = "", now: datetime | None = None) -> str:
        """Add a wallet and return its address (see :meth:`tickloop.runtime.Runtime.add_wallet`)."""
        sources = [name for name, given in (("paper", paper), ("key_env", key_env), ("keystore", keystore)) if given]
        if len(sources) != 1:
            raise TickloopError("a wallet needs exactly one key source: paper, key_env or keystore"
                                + (f" (got {', '.join(sources)})" if sources else ""))
        at = self.parts.clock.at(now)
        if paper:
            wallet = Wallet(address=new_paper_key(self.parts.config.home), kind=WalletKind.PAPER, created_at=at,
                            label=label)
        elif key_env:
            wallet = Wallet(address=address_from_env(key_env), kind=WalletKind.ENV, created_at=at, key_env=key_env,
                            label=label)
        else:
            password_env = password_env or DEFAULT_PASSWORD_ENV
            path = str(Path(str(keystore)).expanduser().absolute())
            wallet = Wallet(address=address_from_keystore(path, password_env), kind=WalletKind.KEYSTORE,
                            created_at=at, keystore=path, password_env=password_env, label=label)
        self.parts.store.add_wallet(wallet)
        return wallet.address

    def get(self, address: str) -> Wallet:
        found = self.parts.store.get_wallet(address)
        if found is None:
            raise NotFoundError(f"wallet {address} has not been added")
        return found

    def fund(self, address: str, network: str, asset: str, amount: int | str) -> int:
        """Credit a paper wallet with ``amount`` raw units of an asset; returns its new balance."""
        wallet = self.get(address)
        if not wallet.is_paper:
            raise TickloopError(f"wallet {wallet.address} is a real wallet ({wallet.key_source()}); only paper"
                                " wallets can be funded by tickloop")
        if not is_raw_amount(str(amount)):
            raise TickloopError(f"amount {amount!r} must be a whole number of raw units (0 to 2**256 - 1)")
        return self.parts.store.fund_wallet(wallet.address, network, asset, int(amount))

    def balance(self, agent: Agent, address: str, network: str, asset: str) -> int:
        """The wallet's balance of a session's starting asset: its funds (a paper wallet is funded
        on first use) or, for a real wallet, what a venue reports."""
        store = self.parts.store
        wallet = store.get_wallet(address)
        if wallet is None:
            raise TickloopError(
                f"wallet {address} has not been added, and agent {agent.name!r} needs a balance of its starting"
                f" asset ({asset} on {network}); add it first: tickloop wallets add --paper, --key-env VAR or"
                " --keystore FILE")
        funds = store.wallet_funds(wallet.address).get((network, asset.lower()))
        if funds is not None:
            return funds
        if wallet.is_paper:
            return store.fund_wallet(wallet.address, network, asset, int(self.parts.config.wallets.paper_funding),
                                     only_if_unfunded=True)
        venues = self.parts.gateway.venues
        for name in venues.names():
            reported = getattr(venues.get(name), "balance", None)
            found = reported(wallet, network, asset) if reported is not None else None
            if found is not None:
                return int(found)
        raise TickloopError(f"cannot tell the balance of {asset} on {network} for wallet {wallet.address}: no"
                            " installed venue reports it")
