"""The one place that builds tickloop's parts from a configuration.

The plugin manager (with ``[plugins] block`` and ``load``), the backend registry, the state store,
the memory backend, the agent loader, the run environment (the gateway's home) and the executor:
``Runtime.from_config``, the CLI (for plugin commands and ``plugins list``) and the process
executor's workers all build them here, so they cannot differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from tickloop.agents import AgentLoader
from tickloop.clock import Clock
from tickloop.config import Config
from tickloop.errors import ConfigError, Problem
from tickloop.memory import MemoryBackend
from tickloop.pluginmanager import PluginManager, make_plugin_manager
from tickloop.registry import Registry
from tickloop.runner import Executor, RunEnvironment
from tickloop.store import StateStore
from tickloop.venues import Gateway

log = logging.getLogger("tickloop")


def plugin_manager(*, block: Iterable[str] = (), load: Iterable[str] = (),
                   plugins: Iterable[Any] = ()) -> PluginManager:
    """The plugin manager for ``[plugins] block`` and ``load`` (and extra plugin objects)."""
    return make_plugin_manager(block=block, load=load, plugins=plugins)


def configured_plugin_manager(config: Config, plugins: Iterable[Any] = ()) -> PluginManager:
    return plugin_manager(block=config.plugins.block, load=config.plugins.load, plugins=plugins)


@attrs.define(kw_only=True)
class Parts:
    """What a runtime is made of, shared by the runtime's services (scheduler, decisions, ...)."""

    config: Config
    pm: PluginManager
    registry: Registry
    store: StateStore
    memory: MemoryBackend
    agents: AgentLoader
    environment: RunEnvironment
    executor: Executor
    clock: Clock = attrs.field(factory=Clock)

    @property
    def gateway(self) -> Gateway:
        """The path from actions to venues, with the runtime's clock."""
        return self.environment.gateway(self.clock.now)

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin that fails is logged, never fatal to the runtime."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("a plugin's %s failed; the runtime goes on", hook)

    def close(self) -> None:
        """Close what was opened; the first failure must not leak the rest."""
        for close in (self.executor.close, self.environment.close, self.store.close, self.memory.close):
            try:
                close()
            except Exception:
                log.exception("closing %s failed", close)


def build(config: Config, *, plugins: Iterable[Any] = (), clock: Clock | None = None) -> Parts:
    """Every part ``config`` names, checked; a bad name is a :class:`ConfigError` naming its key."""
    config.make_home()
    pm = configured_plugin_manager(config, plugins)
    registry = Registry.from_plugin_manager(pm)
    _check_venue_tables(config, registry)
    store = registry.open_state_store(config)
    try:
        # The suggestion store opens lazily: its name is checked now.
        registry.get("suggestions", config.suggestions.store, key="suggestions.store", source=config.source)
        memory = registry.get("memory", config.memory.backend, key="memory.backend",
                              source=config.source).factory(config)
        agents = AgentLoader()
        environment = RunEnvironment(hook=pm.hook, memory=memory, agents=agents, config=config,
                                     registry=registry, store=store)
        executor = registry.get("executor", config.runtime.executor, key="runtime.executor",
                                source=config.source).factory(config, environment)
    except BaseException:
        store.close()
        raise
    return Parts(config=config, pm=pm, registry=registry, store=store, memory=memory, agents=agents,
                 environment=environment, executor=executor, clock=clock or Clock())


def _check_venue_tables(config: Config, registry: Registry) -> None:
    """``[venues.NAME]`` tables name installed venues and only the keys they declare: checked at
    start, because a venue reads its table only when an agent first uses it."""
    source = config.source
    installed = registry.names("venue")
    problems = []
    for name, table in config.venues.items():
        if name not in installed:
            problems.append(Problem(source, f"venues.{name}",
                                    f"no installed venue is called {name!r}"
                                    f" (installed: {', '.join(installed) or 'none'})"))
            continue
        known = registry.get("venue", name, key=f"venues.{name}").options
        if known is None or not isinstance(table, Mapping):
            continue
        for key in sorted(set(table) - set(known)):
            problems.append(Problem(source, f"venues.{name}.{key}", f"unknown key (known: {', '.join(known)})"))
    if problems:
        raise ConfigError(problems)
