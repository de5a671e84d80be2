"""tickloop built-in plugin: paper exchanges that speak the real Hyperliquid and Polymarket
protocols on loopback, so the official clients (and tickloop's venues built on them) run
unmodified against them.

- :mod:`tickloop_paper.hyperliquid`: ``POST /info`` and ``POST /exchange`` with L1 signature
  recovery, nonces, a netted cross-margin position per coin, IOC fills around a movable mid.
- :mod:`tickloop_paper.polymarket`: the CLOB v2 endpoints ``py-clob-client-v2`` uses (L1/L2
  auth, V2 EIP-712 orders, FOK/FAK/GTC) and the Data API's ``GET /positions``.
- :mod:`tickloop_paper.server`: the loopback server, its request log and fault injection.

With no ``[venues.*]`` configured, the venues use :func:`local_exchanges`: the paper exchanges
started in this process on ephemeral ports, over state kept in ``<home>/paper/`` (shared by every
process of the home). ``tickloop paper serve`` runs them standalone.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from tickloop import hookimpl

if TYPE_CHECKING:
    import click

    from tickloop.config import Config
    from tickloop.venues import Endpoints
    from tickloop_paper.server import PaperServer


@attrs.frozen
class Exchanges:
    """Running paper exchanges: their servers (request logs, faults) and apps (state)."""

    hyperliquid: PaperServer
    polymarket_clob: PaperServer
    polymarket_data: PaperServer

    def urls(self) -> dict[str, str]:
        return {"hyperliquid": self.hyperliquid.url, "polymarket_clob": self.polymarket_clob.url,
                "polymarket_data": self.polymarket_data.url}

    def stop(self) -> None:
        for server in (self.hyperliquid, self.polymarket_clob, self.polymarket_data):
            server.stop()


def start_exchanges(state_dir: str | Path | None = None, *, host: str = "127.0.0.1",
                    ports: tuple[int, int, int] = (0, 0, 0)) -> Exchanges:
    """Start the three paper servers; state in ``state_dir`` (files), or in memory for None."""
    from tickloop_paper.hyperliquid import HyperliquidPaper
    from tickloop_paper.polymarket import PolymarketPaper
    from tickloop_paper.server import PaperServer
    from tickloop_paper.state import ExchangeState

    folder = Path(state_dir) if state_dir is not None else None
    hl_server = PaperServer(lambda r: hl(r), host=host, port=ports[0], name="paper-hyperliquid")
    hl = HyperliquidPaper(
        ExchangeState(folder / "hyperliquid.json" if folder else None, HyperliquidPaper.initial_state),
        hl_server.faults)
    clob_server = PaperServer(lambda r: pm.clob(r), host=host, port=ports[1], name="paper-polymarket-clob")
    data_server = PaperServer(lambda r: pm.data(r), host=host, port=ports[2], name="paper-polymarket-data")
    pm = PolymarketPaper(ExchangeState(folder / "polymarket.json" if folder else None, PolymarketPaper.initial_state),
                         clob_server.faults)
    for server in (hl_server, clob_server, data_server):
        server.start()
    return Exchanges(hl_server, clob_server, data_server)


_local: dict[str, Exchanges] = {}
_local_lock = threading.Lock()


def local_exchanges(home: str | Path) -> Exchanges:
    """The paper exchanges of this process for ``home`` (started on first use)."""
    key = str(Path(home).absolute())
    with _local_lock:
        if key not in _local:
            _local[key] = start_exchanges(Path(key) / "paper")
        return _local[key]


@hookimpl(trylast=True)
def tickloop_venue_endpoints(venue: str, config: Config) -> Endpoints | None:
    """The built-in venues' defaults: this process's paper exchanges for the home."""
    from tickloop.venues import Endpoints

    served = {"hyperliquid": {"base_url": "hyperliquid"},  # endpoint key -> paper server
              "polymarket": {"clob_url": "polymarket_clob", "data_url": "polymarket_data"}}
    if venue not in served:
        return None
    urls = local_exchanges(config.home).urls()
    return Endpoints({key: urls[server] for key, server in served[venue].items()}, paper=True)


@hookimpl
def tickloop_register_commands(cli: click.Group) -> None:
    from tickloop_paper.commands import paper
    from tickloop_paper.demo import demo

    cli.add_command(paper)
    cli.add_command(demo)


__all__ = ["Exchanges", "local_exchanges", "start_exchanges"]
