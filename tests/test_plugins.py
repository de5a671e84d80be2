"""The plugin manager, the registry and the hook specifications."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import tickloop
from tickloop import hookspecs
from tickloop.errors import PluginError, UnknownBackendError
from tickloop.pluginmanager import ESSENTIAL_PLUGINS, describe, make_plugin_manager
from tickloop.registry import Backend, Registry

DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"
BUILTINS = {"diskcache", "executors", "memory", "sql"}


def test_builtins_are_loaded_from_entry_points_like_any_plugin():
    """tickloop's own plugins come from its distribution's entry points and say so."""
    pm = make_plugin_manager()
    rows = {row["name"]: row for row in describe(pm)}
    assert set(rows) >= BUILTINS
    assert all(rows[name]["distribution"] == "tickloop" and rows[name]["builtin"] for name in BUILTINS)


def test_blocking_a_plugin_removes_its_backends():
    """A blocked plugin is not loaded, so its backends are not offered."""
    registry = Registry.from_plugin_manager(make_plugin_manager(block=["diskcache"]))
    assert "diskcache" not in registry.names("memory") and "memory" in registry.names("memory")
    with pytest.raises(UnknownBackendError, match="installed: memory"):
        registry.get("memory", "diskcache", key="memory.backend")


@pytest.mark.parametrize("name", sorted(BUILTINS - ESSENTIAL_PLUGINS))
def test_the_runtime_starts_with_any_non_essential_builtin_blocked(name, make_runtime):
    """Every non-essential built-in can be blocked as long as config picks another backend."""
    if name == "sql":
        with pytest.raises(UnknownBackendError, match=re.escape("state.url: unknown store backend 'sqlite'")):
            make_runtime(overrides={"plugins": {"block": [name]}})
        return
    other_memory = "diskcache" if name == "memory" else "memory"
    rt = make_runtime(memory=other_memory, overrides={"plugins": {"block": [name]}})
    assert rt.pm.is_blocked(name)


def test_essential_plugins_cannot_be_blocked():
    """Blocking the executors plugin is refused with the reason."""
    with pytest.raises(PluginError, match="'executors' is essential"):
        make_plugin_manager(block=["executors"])


def test_a_hook_without_a_spec_is_rejected():
    """check_pending refuses an implementation of a hook that does not exist."""

    class Typo:
        @tickloop.hookimpl
        def tickloop_run_finshed(self, run):
            pass

    with pytest.raises(PluginError, match="tickloop_run_finshed"):
        make_plugin_manager(plugins=[Typo()])


def test_a_hook_with_an_unknown_argument_is_rejected():
    """An implementation asking for an argument the spec lacks is refused at registration."""

    class Bad:
        @tickloop.hookimpl
        def tickloop_run_started(self, session, run, extra):
            pass

    with pytest.raises(PluginError, match="extra"):
        make_plugin_manager(plugins=[Bad()])


def test_registry_attributes_backends_to_plugins_and_refuses_duplicates():
    """Each backend records its plugin; two plugins registering one name is an error."""

    class Extra:
        @tickloop.hookimpl
        def tickloop_register_memory_backends(self, register):
            register(Backend(name="memory", factory=dict, description="clash"))

    registry = Registry.from_plugin_manager(make_plugin_manager())
    assert registry.backends["memory"]["diskcache"].plugin == "diskcache"
    assert registry.backends["executor"]["process"].plugin == "executors"
    with pytest.raises(PluginError, match="memory backend 'memory' is registered twice"):
        Registry.from_plugin_manager(make_plugin_manager(plugins=[Extra()]))


def test_autoload_switch_skips_third_party_entry_points(monkeypatch):
    """With autoload off, only tickloop's own entry points and the TICKLOOP_PLUGINS list load."""
    import importlib.metadata

    loaded = []

    class FakeEP:
        name, value, group, dist = "thirdparty", "x:y", "tickloop.plugins", None

        def load(self):
            loaded.append(self.name)
            return type("P", (), {})()

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [*real(**kw), FakeEP()] if kw.get("group") == "tickloop.plugins" else real(**kw))
    make_plugin_manager(autoload=False)
    assert loaded == []
    monkeypatch.setenv("TICKLOOP_PLUGINS", "thirdparty")
    pm = make_plugin_manager(autoload=False)
    assert loaded == ["thirdparty"] and pm.has_plugin("thirdparty")


def test_a_plugin_that_fails_to_import_is_named_with_the_escape_hatch(monkeypatch):
    """A broken plugin's import error names it and says how to start without it."""
    import importlib.metadata

    class Broken:
        name, value, group, dist = "broken", "broken_mod", "tickloop.plugins", None

        def load(self):
            raise ImportError("no module named broken_mod")

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [Broken()] if kw.get("group") == "tickloop.plugins" else real(**kw))
    with pytest.raises(PluginError, match=r"'broken'.*failed to load.*TICKLOOP_DISABLE_PLUGIN_AUTOLOAD"):
        make_plugin_manager(autoload=True)


SPECS = [(name, getattr(hookspecs, name)) for name in hookspecs.HOOK_NAMES]


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_every_hook_has_the_fixed_docstring_shape(name, spec):
    """Each spec says when it is called, documents every parameter and the return, and its version."""
    doc = inspect.getdoc(spec)
    params = list(inspect.signature(spec).parameters)
    assert doc.splitlines()[0].startswith("Called "), name
    for param in params:
        assert f":param {param}:" in doc, f"{name}: {param} undocumented"
    assert ":returns:" in doc and ".. versionadded::" in doc
    firstresult = spec.tickloop_spec["firstresult"]
    assert ("Stops at the first non-None result; return None to let other plugins decide." in doc) == firstresult


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_every_hook_is_documented_for_plugin_authors(name, spec):
    """docs/plugins.md has a heading with each hook's exact signature."""
    params = ", ".join(inspect.signature(spec).parameters)
    assert re.search(rf"^### `{name}\({re.escape(params)}\)`", DOCS.read_text(), re.M), name
