"""How the command line shows things: consoles, times, amounts, statuses, runs and portfolios.

Commands build their lines from these helpers so a run, a time or an amount reads the same in
every command. rich is imported inside the helpers, so ``tickloop --help`` does not pay for it.
What agents and venues wrote is text, never markup: it is printed with ``markup=False`` or escaped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from tickloop.portfolio import Portfolio
    from tickloop.runs import Run

#: The colour of each run status.
RUN_STYLES = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow"}
STATE_STYLES = {"running": "green", "paused": "yellow", "unwinding": "magenta", "stopped": "dim"}
_SUGGESTION_STYLES = {"pending": "yellow", "executed": "green", "failed": "red", "rejected": "dim", "expired": "dim",
                      "deleted": "dim", "approved": "cyan"}


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): colour on a terminal, plain text otherwise."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def json_out(obj: Any) -> None:
    """``obj`` (records, lists of them, plain data) as JSON on stdout."""
    from tickloop.jsondata import dumps

    click.echo(dumps(obj))


def json_doc(data: Any) -> None:
    """Plain data as an indented JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def when(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SSZ`` (UTC), or ``-``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def short_when(value: datetime | None) -> str:
    """``MM-DD HH:MM`` (UTC) for tables; ``show`` commands have the full time."""
    return value.astimezone(UTC).strftime("%m-%d %H:%M") if value is not None else "-"


def took(run: Run) -> str:
    """How long a finished run took (``1.234s``), or ``-``."""
    if run.finished_at is None or run.started_at is None:
        return "-"
    return f"{(run.finished_at - run.started_at).total_seconds():.3f}s"


def first_line(text: str | None) -> str:
    """The first line of an error (its message; the traceback is kept elsewhere)."""
    return text.splitlines()[0] if text else ""


def compact(value: Any) -> str:
    """A value as one line of JSON."""
    from tickloop.jsondata import to_data

    return json.dumps(to_data(value), separators=(", ", ": "), default=str)


def styled(text: str, style: str) -> str:
    """``text`` in a rich style (markup), or as it is without one."""
    return f"[{style}]{text}[/]" if style else text


def run_status(status: str) -> str:
    return styled(status, RUN_STYLES.get(status, ""))


def state_text(state: Any) -> str:
    return styled(str(state), STATE_STYLES.get(str(state), ""))


def suggestion_status(status: str) -> str:
    return styled(status, _SUGGESTION_STYLES.get(status, ""))


def print_run(out: Console, run: Run) -> None:
    """A run with what it logged, its error and traceback (``tickloop run``)."""
    from rich.markup import escape  # what agents log is text, not markup ("[venues.x]" must show)

    out.print(f"run {run.id} ({run.kind}) {run_status(run.status)} at {when(run.finished_at)}")
    for line in run.logs:
        level = {"error": "[red]error[/]", "debug": "[dim]debug[/]"}.get(line.level, "info ")
        out.print(f"  {level} {escape(line.message)}", markup=True, soft_wrap=True)
    if run.error:
        out.print(f"  [red]{escape(run.error)}[/]", soft_wrap=True)
        if run.traceback:
            out.print(run.traceback.rstrip(), markup=False, style="dim", soft_wrap=True)


def asset_name(network: str | None, asset: str | None) -> str:
    """``USDC (0xa0b8... on ethereum:1)``, or the address alone for an asset tickloop does not know."""
    from tickloop.wallets import asset_info

    symbol, _ = asset_info(asset or "", network)
    return f"{symbol} ({asset} on {network})" if symbol else f"{asset} on {network}"


def human(raw: int | str, asset: str | None, network: str | None = None) -> str:
    """``raw`` units, with the amount in whole tokens when the asset's decimals are known."""
    from decimal import Decimal

    from tickloop.wallets import asset_info

    symbol, decimals = asset_info(asset or "", network)
    if decimals is None:
        return f"{raw} raw units"
    whole = format(Decimal(int(raw)).scaleb(-decimals).normalize(), "f")
    return f"{raw} raw units = {whole} {symbol}"


def print_portfolio(out: Console, portfolio: Portfolio, *, left_open: bool = False) -> None:
    """The balances and positions tables (positions a stopped session left open in red)."""
    from rich.table import Table

    if portfolio.balances:
        table = Table("network", "asset", "symbol", "amount (raw)", "value USD", "class", title="balances",
                      title_justify="left", title_style="bold")
        for b in portfolio.balances:
            table.add_row(b.network, b.assetKey, b.symbol or "", b.amountRaw, b.valueUsd or "-", b.assetClass)
        out.print(table)
    else:
        out.print("[bold]balances[/]  none")
    title = "positions left open (residue)" if left_open else "positions"
    if portfolio.positions:
        table = Table("venue", "coin", "asset", "size", "entry", "mark", "unrealized PnL", title=title,
                      title_justify="left", title_style="bold red" if left_open else "bold")
        for p in portfolio.positions:
            table.add_row(p.venue or "", p.coin, p.assetKey, p.size, p.averageEntryPrice or "-",
                          p.markPriceUsd or "-", p.unrealizedPnlUsd or "-")
        out.print(table)
    else:
        out.print(f"[bold]{title}[/]  none")
