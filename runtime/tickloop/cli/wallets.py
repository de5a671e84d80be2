"""``tickloop wallets``: add (paper, key in an environment variable, keystore), list and fund."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tickloop.cli import render
from tickloop.cli.app import runtime
from tickloop.errors import TickloopError

if TYPE_CHECKING:
    from tickloop.runtime import Runtime
    from tickloop.wallets import Wallet


@click.group()
def wallets() -> None:
    """Wallets sessions trade from: add (paper, key in an environment variable, keystore), list, fund.

    Keys are never stored in plain text and never printed.
    """


@wallets.command("add")
@click.option("--paper", is_flag=True, help="Generate a paper wallet (its key is kept encrypted in the home).")
@click.option("--key-env", metavar="VAR", default=None,
              help="A real wallet whose hex private key is in environment variable VAR (only the name is stored).")
@click.option("--keystore", metavar="FILE", default=None,
              help="A real wallet from an encrypted Ethereum keystore file (only the path is stored).")
@click.option("--password-env", metavar="VAR", default=None,
              help="With --keystore: the variable holding its password [default: TICKLOOP_KEYSTORE_PASSWORD].")
@click.option("--label", default="", help="A name for people.")
@click.option("--json", "as_json", is_flag=True, help="Print address, kind and key source as JSON.")
@click.pass_context
def wallets_add(ctx: click.Context, paper: bool, key_env: str | None, keystore: str | None,
                password_env: str | None, label: str, as_json: bool) -> None:
    """Add a wallet and print its address. Give exactly one of --paper, --key-env, --keystore."""
    given = [name for name, value in (("--paper", paper), ("--key-env", key_env), ("--keystore", keystore))
             if value]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise TickloopError(f"give exactly one key source: --paper, --key-env VAR or --keystore FILE{got}")
    if password_env and not keystore:
        raise TickloopError("--password-env goes with --keystore (the variable holding the keystore's password)")
    rt = runtime(ctx)
    address = rt.add_wallet(paper=paper, key_env=key_env, keystore=keystore, password_env=password_env, label=label)
    wallet = rt.wallet(address)
    if as_json:
        render.json_out(_wallet_data(rt, wallet))
        return
    click.echo(f"added {wallet.kind} wallet {wallet.address} (key: {wallet.key_source()})")
    if wallet.is_paper:
        click.echo(f"  funded on first use with {rt.config.wallets.paper_funding} raw units of a session's starting"
                   " asset ([wallets] paper_funding); or: tickloop wallets fund")


def _wallet_data(rt: Runtime, wallet: Wallet) -> dict[str, Any]:
    """A wallet, where its key comes from (never the key), and its funds per asset."""
    from tickloop.jsondata import to_data

    view = rt.wallet_view(wallet.address)
    assets = [{"network": a.network, "asset": a.asset, "symbol": a.symbol, "decimals": a.decimals,
               "funds": None if a.funds is None else str(a.funds), "allocated": str(a.allocated),
               "free": None if a.free is None else str(a.free)} for a in view.assets]
    return {**to_data(wallet), "key_source": wallet.key_source(), "assets": assets,
            "open_sessions": list(view.open_sessions)}


@wallets.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def wallets_list(ctx: click.Context, as_json: bool) -> None:
    """List wallets: kind, where the key comes from, funds, what open sessions hold, and what is free."""
    rt = runtime(ctx)
    rows = [_wallet_data(rt, w) for w in rt.wallets()]
    if as_json:
        render.json_out(rows)
        return
    out = render.console()
    if not rows:
        out.print("no wallets (add one: tickloop wallets add --paper, --key-env VAR or --keystore FILE)")
        return
    for row in rows:
        label = f"  {row['label']!r}" if row["label"] else ""
        out.print(f"[bold]{row['address']}[/]  {row['kind']}{label}")
        out.print(f"  key       {row['key_source']}", markup=False, soft_wrap=True)
        for a in row["assets"]:
            funds = render.human(a["funds"], a["asset"], a["network"]) if a["funds"] is not None \
                else "(as its venue reports)"
            free = a["free"] if a["free"] is not None else "-"
            out.print(f"  {render.asset_name(a['network'], a['asset'])}", markup=False, soft_wrap=True)
            out.print(f"            funds {funds}  allocated {a['allocated']}  free {free}", markup=False,
                      soft_wrap=True)
        if not row["assets"]:
            out.print("  funds     none yet" + (" (a paper wallet is funded on first use)"
                                                if row["kind"] == "paper" else ""))
        open_sessions = ", ".join(str(i) for i in row["open_sessions"])
        out.print(f"  sessions  {open_sessions or 'none open'}")


@wallets.command("fund")
@click.argument("address")
@click.option("--asset", required=True, metavar="NETWORK:TOKEN",
              help="The asset: its network and token address, e.g. ethereum:1:0xa0b8...eb48 or"
                   " hypercore:perp:0x0000...0000.")
@click.option("--amount", required=True, metavar="RAW", help="How much to add, in raw units.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def wallets_fund(ctx: click.Context, address: str, asset: str, amount: str, as_json: bool) -> None:
    """Add paper money to a paper wallet (real wallets hold what their venues say)."""
    network, sep, token = asset.rpartition(":")
    if not sep or not network or not token:
        raise TickloopError(f"--asset {asset!r}: expected NETWORK:TOKENADDRESS, e.g. ethereum:1:0xa0b8...eb48")
    rt = runtime(ctx)
    balance = rt.fund_wallet(address, network, token, amount)
    wallet = rt.wallet(address)
    if as_json:
        render.json_out({"address": wallet.address, "network": network, "asset": token.lower(), "added": amount,
                         "balance": str(balance)})
        return
    click.echo(f"wallet {wallet.address} now holds {render.human(balance, token, network)} of"
               f" {render.asset_name(network, token)}")
