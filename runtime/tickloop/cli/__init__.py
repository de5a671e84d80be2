"""The ``tickloop`` command line.

Every command works whether or not ``serve`` is running: commands write to the state store, and
a running ``serve`` is told of each change at once. Heavy modules are imported inside commands,
so ``tickloop --help`` stays fast.

:mod:`~tickloop.cli.app` holds the root group, its options and :func:`main`; each command group
has its module; :mod:`~tickloop.cli.render` is how they all show things. Plugins add commands
through ``tickloop_register_commands`` (the paper plugin adds ``paper`` and ``demo``).
"""

from __future__ import annotations

from tickloop.cli import agents, reconcile, runs, serve, sessions, suggestions, wallets
from tickloop.cli.app import ID, LIMIT, Group, IdType, Options, cli, main

for _command in (serve.serve, serve.run, agents.check, agents.agents, agents.plugins, sessions.sessions,
                 wallets.wallets, suggestions.suggestions, runs.runs, runs.logs, reconcile.reconcile):
    cli.add_command(_command)

__all__ = ["ID", "LIMIT", "Group", "IdType", "Options", "cli", "main"]
