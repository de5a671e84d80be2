"""Backends by name: what each installed plugin provides, and picking one from configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from tickloop.errors import PluginError, UnknownBackendError

#: family -> (collector hook, which extra installs more of them); a hint names an extra only once
#: a backend ships in it.
FAMILIES: dict[str, tuple[str, str]] = {
    "memory": ("tickloop_register_memory_backends", ""),
    "store": ("tickloop_register_state_stores", ""),
    "suggestions": ("tickloop_register_suggestion_stores", ""),
    "executor": ("tickloop_register_executors", ""),
    "venue": ("tickloop_register_venues", ""),
    "closer": ("tickloop_register_closers", ""),
}


@attrs.frozen
class Backend:
    """One named backend a plugin offers; ``factory`` builds it (arguments depend on the family)."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""  # set by the registry: the plugin that registered it
    #: the keys its ``[venues.NAME]`` table accepts (venues); None: not declared, nothing checked
    options: tuple[str, ...] | None = None


@attrs.frozen
class Registry:
    """Every backend of every family, collected from the plugin manager once."""

    backends: dict[str, dict[str, Backend]]

    @classmethod
    def from_plugin_manager(cls, pm: Any) -> Registry:
        backends: dict[str, dict[str, Backend]] = {}
        for family, (hook_name, _) in FAMILIES.items():
            found: dict[str, Backend] = {}
            caller = getattr(pm.hook, hook_name)
            # Call implementations one at a time so each backend is attributed to its plugin.
            for impl in reversed(caller.get_hookimpls()):
                plugin = impl.plugin_name

                def register(backend: Backend, _plugin: str = plugin, _found: dict = found,
                             _family: str = family) -> None:
                    if not isinstance(backend, Backend):
                        raise PluginError(f"plugin {_plugin!r} registered {backend!r} as a {_family} backend;"
                                          " expected tickloop.registry.Backend")
                    if backend.name in _found:
                        raise PluginError(f"{_family} backend {backend.name!r} is registered twice:"
                                          f" by {_found[backend.name].plugin!r} and by {_plugin!r}")
                    _found[backend.name] = attrs.evolve(backend, plugin=_plugin)

                impl.function(register=register)
            backends[family] = found
        return cls(backends)

    def open_state_store(self, config: Any) -> Any:
        """The state store ``[state] url`` names: the backend is the URL's scheme (``sqlite``)."""
        url = config.state_url
        scheme = url.partition(":")[0].partition("+")[0]
        return self.get("store", scheme, key="state.url", source=config.source).factory(config, url)

    def names(self, family: str) -> list[str]:
        return sorted(self.backends.get(family, {}))

    def get(self, family: str, name: str, *, key: str, source: str = "") -> Backend:
        """The backend ``name`` of ``family``; ``key`` is the config key that named it and ``source``
        the file it is in (for the error)."""
        try:
            return self.backends[family][name]
        except KeyError:
            pass
        installed = ", ".join(self.names(family)) or "none"
        hint = FAMILIES[family][1]
        raise UnknownBackendError(
            f"{source + ': ' if source else ''}{key}: unknown {family} backend {name!r}; installed: {installed}"
            + (f" ({hint})" if hint else " (is the plugin that provides it installed?)")
        )
