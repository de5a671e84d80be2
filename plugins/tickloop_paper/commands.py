"""``tickloop paper serve``: the paper exchanges as a standalone server for any client."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click


@click.group()
def paper() -> None:
    """Paper exchanges that speak the Hyperliquid and Polymarket protocols."""


@paper.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--hyperliquid-port", type=int, default=0, help="Port for Hyperliquid (0: any free port).")
@click.option("--clob-port", type=int, default=0, help="Port for the Polymarket CLOB (0: any free port).")
@click.option("--data-port", type=int, default=0, help="Port for the Polymarket Data API (0: any free port).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), default=None,
              help="Keep the exchanges' state in this folder (default: in memory, lost on exit).")
def serve(host: str, hyperliquid_port: int, clob_port: int, data_port: int, state_dir: str | None) -> None:
    """Serve the paper exchanges until interrupted.

    Prints one JSON line with the base URLs ({"hyperliquid", "polymarket_clob",
    "polymarket_data"}), then serves. Fund accounts with POST {hyperliquid}/paper/fund
    {"user", "usdc"} and POST {polymarket_clob}/paper/fund {"address", "pusd"}.
    """
    from tickloop_paper import start_exchanges

    try:
        exchanges = start_exchanges(Path(state_dir) if state_dir else None, host=host,
                                    ports=(hyperliquid_port, clob_port, data_port))
    except OSError as exc:
        raise click.ClickException(f"cannot bind the paper exchanges on {host}: {exc.strerror}") from None
    sys.stdout.write(json.dumps(exchanges.urls()) + "\n")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        exchanges.stop()
