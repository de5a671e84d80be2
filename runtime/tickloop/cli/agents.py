"""``tickloop check`` (validate an agent), ``agents list`` and ``plugins list``: what is installed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from tickloop.cli import render
from tickloop.cli.app import Options, cli_options
from tickloop.errors import TickloopError


@click.command()
@click.argument("path", type=click.Path())
def check(path: str) -> None:
    """Validate an agent folder (or its circuit.toml): report every problem, exit 1 if any."""
    from tickloop.manifest import Manifest, check_agent_folder

    problems = check_agent_folder(path)
    if problems:
        err = render.console(stderr=True)
        for problem in problems:
            err.print(str(problem), markup=False, soft_wrap=True)
        raise SystemExit(1)
    manifest = Manifest.from_file(path)
    click.echo(f"ok: {manifest.name} {manifest.version} ({manifest.schedule.describe()},"
               f" {len(manifest.settings)} setting(s))")


@click.group()
def agents() -> None:
    """Installed agents (the tickloop.agents entry points)."""


def _agent_rows() -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """One row per installed agent (its manifest, or why it does not load), and the names that
    several distributions declare."""
    from tickloop.agents import AgentLoader, clashes, installed_agents

    loader = AgentLoader()
    rows = []
    installed = installed_agents()
    for info in installed:
        row: dict[str, Any] = {"name": info.name, "entry_point": info.value, "distribution": info.distribution,
                               "version": info.version}
        try:
            manifest = loader.load(info.name).manifest
            row.update(agent=manifest.name, tagline=manifest.tagline, schedule=manifest.schedule.describe(),
                       modes=list(manifest.allowedExecutionModes), error=None)
        except TickloopError as exc:
            row.update(agent=None, tagline=None, schedule=None, modes=[], error=str(exc))
        rows.append(row)
    return rows, clashes(installed)


@agents.command("list")
@click.option("--json", "as_json", is_flag=True)
def agents_list(as_json: bool) -> None:
    """List installed agents with their manifest's name, version and schedule."""
    rows, clashing = _agent_rows()
    if as_json:
        render.json_doc(rows)
        _warn_clashes(clashing)
        return
    from rich.table import Table

    table = Table("name", "version", "tagline", "schedule", "modes", "from")
    for row in rows:
        if row["error"]:
            clash = clashing.get(row["name"])
            error = f"{len(clash)} distributions declare this name (below)" if clash else row["error"]
            table.add_row(row["name"], "", f"[red]{error}[/]", "", "", row["distribution"] or "")
        else:
            table.add_row(row["name"], row["version"] or "", row["tagline"], row["schedule"], ",".join(row["modes"]),
                          f"{row['distribution']} {row['version']}")
    render.console().print(
        table if rows else "no agents installed (pip install ./agents/hello, or run a folder by path)")
    _warn_clashes(clashing)


def _warn_clashes(clashing: Mapping[str, Any]) -> None:
    from tickloop.agents import clash_message

    for name, found in clashing.items():
        render.console(stderr=True).print(f"warning: {clash_message(name, found)}", style="yellow", markup=False,
                                          soft_wrap=True)


@click.group()
def plugins() -> None:
    """Loaded plugins and the hooks they implement."""


def _plugin_rows(options: Options) -> list[dict[str, Any]]:
    """The plugins the selected config loads, each with the backends it provides."""
    from tickloop.bootstrap import configured_plugin_manager
    from tickloop.config import Config
    from tickloop.pluginmanager import describe
    from tickloop.registry import FAMILIES, Registry

    config = Config.load(options.config, home=options.home)
    pm = configured_plugin_manager(config)
    rows = describe(pm)
    registry = Registry.from_plugin_manager(pm)
    provides: dict[str, list[str]] = {}
    for family in FAMILIES:
        for name in registry.names(family):
            provides.setdefault(registry.backends[family][name].plugin, []).append(f"{family}:{name}")
    for row in rows:
        row["provides"] = provides.get(row["name"], [])
    return rows


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins: name, distribution, version and hooks."""
    rows = _plugin_rows(cli_options(ctx))
    if as_json:
        render.json_doc(rows)
        return
    from rich.table import Table

    table = Table("plugin", "distribution", "provides", "hooks")
    for row in rows:
        if row["blocked"]:
            table.add_row(row["name"], "[yellow]blocked[/]", "", "")
            continue
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else row["module"]
        hooks = ", ".join(h.removeprefix("tickloop_") for h in row["hooks"])
        table.add_row(row["name"], dist, ", ".join(row["provides"]), hooks)
    render.console().print(table)
