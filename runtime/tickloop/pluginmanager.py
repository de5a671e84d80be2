"""The plugin manager: hook specs, entry points, blocking, validation.

Built-in plugins are entry points of tickloop's own distribution, loaded exactly like a
third-party plugin. ``TICKLOOP_DISABLE_PLUGIN_AUTOLOAD=1`` loads only tickloop's own plugins
(plus the names listed in ``TICKLOOP_PLUGINS``, comma-separated), so a broken third-party plugin
cannot stop the CLI from starting. ``[plugins] block = [...]`` blocks plugins by name.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterable
from typing import Any

import pluggy

from tickloop import hookspecs
from tickloop.errors import PluginError

NAME = hookspecs.NAME
PLUGIN_GROUP = "tickloop.plugins"
DISTRIBUTION = "tickloop"

#: Plugins the runtime cannot work without; blocking one is refused.
ESSENTIAL_PLUGINS = frozenset({"executors", "routing"})


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, looking only at ``tickloop_*`` attributes of a plugin."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        #: plugin name -> (distribution, version) for plugins loaded from entry points
        self.distributions: dict[str, tuple[str, str]] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        if not name.startswith(f"{NAME}_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == DISTRIBUTION


def make_plugin_manager(*, block: Iterable[str] = (), autoload: bool | None = None,
                        plugins: Iterable[Any] = (), load: Iterable[str] = ()) -> PluginManager:
    """A fresh, validated plugin manager.

    :param block: plugin names to block (``[plugins] block``); essential ones are refused.
    :param autoload: load third-party entry points; default: unless
        ``TICKLOOP_DISABLE_PLUGIN_AUTOLOAD`` is set.
    :param plugins: extra plugin objects to register (tests, embedding applications).
    :param load: dotted module names to import and register (``[plugins] load``).
    """
    pm = PluginManager(NAME)
    pm.add_hookspecs(hookspecs)
    for name in block:
        if name in ESSENTIAL_PLUGINS:
            raise PluginError(f"plugins.block: plugin {name!r} is essential and cannot be blocked")
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("TICKLOOP_DISABLE_PLUGIN_AUTOLOAD")
    allowed = {n.strip() for n in os.environ.get("TICKLOOP_PLUGINS", "").split(",") if n.strip()}
    for ep in _entry_points():
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        if not (autoload or _is_builtin(ep) or ep.name in allowed):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                " (set TICKLOOP_DISABLE_PLUGIN_AUTOLOAD=1 to start without third-party plugins)"
            ) from None
        _register(pm, plugin, ep.name, ep.dist)
    for module in load:
        if pm.is_blocked(module) or pm.has_plugin(module):
            continue
        try:
            plugin = importlib.import_module(module)
        except Exception as exc:
            raise PluginError(
                f"plugins.load: module {module!r} failed to import: {type(exc).__name__}: {exc}") from None
        if not pm.is_registered(plugin):
            _register(pm, plugin, module, None)
    for plugin in plugins:
        if pm.is_registered(plugin):  # already loaded (an installed plugin passed again): one copy
            continue
        _register(pm, plugin, None, None)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    if os.environ.get("TICKLOOP_TRACE_PLUGINS"):
        pm.trace.root.setwriter(sys.stderr.write)  # stderr, so --json output stays clean
        pm.enable_tracing()
    return pm


def _register(pm: PluginManager, plugin: Any, name: str | None, dist: Any) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name or plugin!r} does not match the hook specifications: {exc}") from None
    except ValueError as exc:  # already registered under another name
        raise PluginError(f"plugin {name or plugin!r}: {exc}") from None
    if dist is not None and name is not None:
        pm.distributions[name] = (dist.metadata["Name"], dist.version)


def describe(pm: PluginManager) -> list[dict[str, Any]]:
    """Every registered plugin: name, distribution and version, module, and its hooks."""
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: str(np[0])):
        if plugin is None:
            out.append({"name": name, "blocked": True, "hooks": []})
            continue
        dist, version = pm.distributions.get(name, (None, None))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append({
            "name": name,
            "distribution": dist,
            "version": version,
            "module": getattr(plugin, "__name__", type(plugin).__name__),
            "file": getattr(plugin, "__file__", None),
            "builtin": dist == DISTRIBUTION,
            "blocked": False,
            "hooks": hooks,
        })
    return out
