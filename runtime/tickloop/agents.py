"""Finding and loading agents: ``tickloop.agents`` entry points and agent folders.

An agent folder holds ``circuit.toml`` and ``main.py`` with a module-level ``run(agent)`` and an
optional ``unwind(agent, portfolio)``. An installed agent is an entry point in the
``tickloop.agents`` group whose value is a module laid out the same way: ``circuit.toml`` sits
next to the module's file.

**References.** A reference with a path separator, or starting with ``.``, is a folder; any other
is the name of an installed agent, whatever folders the working directory holds (a session's
stored reference must not change meaning with the directory ``serve`` runs in). A name two
distributions declare is refused, never resolved to one of them.

**Folder namespaces.** A folder is never put on ``sys.path``. Its modules import into a private
package ``tickloop_agent_<folder>_<hash>`` whose ``__path__`` is the folder: ``main.py`` is
``<package>.main``, ``helpers.py`` is ``<package>.helpers``. Every module loaded from the folder
gets builtins of its own whose ``__import__`` maps an absolute import to the package when the
folder holds that top-level name (a module, a package, or a directory without ``__init__.py``
that nothing else provides, as under ``python main.py``). So two agents' ``helpers`` are two
modules, and a folder's ``hyperliquid/`` is that agent's alone: the rest of the process, the
venues included, still imports the real SDK. Relative imports work too (``from . import
helpers``), also with ``importlib.import_module(".helpers", __package__)``; an absolute
``importlib.import_module("helpers")`` does not go through ``__import__`` and does not see the
folder. A small meta-path finder, answering only for the registered private packages, gives each
module from the folder those builtins before its code runs (files, tracebacks and pickling by
module name are the usual ones). Installed agents are ordinary packages and are imported as such.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from tickloop.errors import AgentError, TickloopError, UnknownAgentError
from tickloop.manifest import Manifest

GROUP = "tickloop.agents"
MANIFEST = "circuit.toml"
MAIN = "main.py"
#: How the private package of every agent folder starts (in ``sys.modules``, in pickles).
PREFIX = "tickloop_agent_"


@attrs.frozen
class Agent:
    """A loaded agent: its manifest and its functions."""

    ref: str  # what it is known by: an entry-point name, or an absolute folder path
    folder: Path
    manifest: Manifest
    run: Callable[..., Any]
    unwind: Callable[..., Any] | None
    source: str  # "folder" or "<distribution> <version>"

    @property
    def name(self) -> str:
        return self.manifest.name


@attrs.frozen
class InstalledAgent:
    """An entry point in the ``tickloop.agents`` group (not imported)."""

    name: str
    value: str
    distribution: str | None
    version: str | None

    @classmethod
    def from_entry_point(cls, ep: importlib.metadata.EntryPoint) -> InstalledAgent:
        dist = getattr(ep, "dist", None)
        return cls(ep.name, ep.value, dist.metadata["Name"] if dist else None, dist.version if dist else None)


def installed_agents() -> list[InstalledAgent]:
    return sorted((InstalledAgent.from_entry_point(ep) for ep in importlib.metadata.entry_points(group=GROUP)),
                  key=lambda a: a.name)


def clashes(agents: list[InstalledAgent]) -> dict[str, list[InstalledAgent]]:
    """The agent names more than one installed distribution declares, with their declarations."""
    by_name: dict[str, list[InstalledAgent]] = {}
    for agent in agents:
        by_name.setdefault(agent.name, []).append(agent)
    return {name: found for name, found in by_name.items() if len(found) > 1}


def clash_message(name: str, found: list[InstalledAgent]) -> str:
    declared = " and ".join(f"{a.distribution} {a.version} ({a.value})" for a in found)
    uninstall = " or ".join(f"pip uninstall {a.distribution}" for a in found)
    return (f"agent {name!r} is declared by {len(found)} installed distributions: {declared}; uninstall one"
            f" ({uninstall}), or run the one you mean by its folder path (./my-agent)")


def is_folder_ref(ref: str) -> bool:
    """A folder: the reference has a path separator or starts with '.'. Anything else is the name
    of an installed agent, even when the working directory has a folder of that name."""
    return "/" in ref or "\\" in ref or ref.startswith(".")


class AgentLoader:
    """Loads agents by reference and keeps them: a module is imported once per process."""

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._lock = threading.Lock()

    def canonical(self, ref: str) -> str:
        """The reference a session stores: an absolute folder path, or the entry-point name."""
        if is_folder_ref(ref):
            path = Path(ref).expanduser()
            folder = path.parent if path.name == MANIFEST else path
            try:
                return str(folder.resolve())
            except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
                raise UnknownAgentError(f"agent {_shown(ref)}: not a usable folder path: {_reason(exc)}") from None
        return ref

    def load(self, ref: str) -> Agent:
        # Runs name agents by their canonical reference already: find those without canonicalizing
        # again (a filesystem resolve() for a folder, on every run).
        agent = self._agents.get(ref)
        if agent is not None:
            return agent
        key = self.canonical(ref)
        agent = self._agents.get(key)
        if agent is None:
            with self._lock:
                agent = self._agents.get(key)
                if agent is None:
                    agent = self._load_folder(Path(key)) if is_folder_ref(key) else self._load_entry_point(key)
                    self._agents[key] = agent
        return agent

    def _load_folder(self, folder: Path) -> Agent:
        try:
            found = (folder / MANIFEST).is_file()
            what = "" if found else "no such folder" if not folder.exists() else f"no {MANIFEST} in it"
        except OSError as exc:
            what = f"not a usable folder path: {_reason(exc)}"
        if what:
            raise UnknownAgentError(f"agent {_shown(str(folder))}: {what}")
        manifest = Manifest.from_file(folder)
        main = folder / MAIN
        if not main.is_file():
            raise AgentError(f"{main}: missing (an agent folder needs main.py with a run(agent) function)")
        module = _import_main(folder, main)
        return _agent(str(folder), folder, manifest, module, "folder", where=str(main))

    def _load_entry_point(self, name: str) -> Agent:
        matches = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
        if not matches:
            raise UnknownAgentError(_unknown(name))
        if len(matches) > 1:
            raise AgentError(clash_message(name, [InstalledAgent.from_entry_point(ep) for ep in matches]))
        [ep] = matches
        try:
            obj = ep.load()
        except Exception as exc:
            raise AgentError(f"agent {name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}") from None
        file = getattr(obj, "__file__", None)
        if not file:
            raise AgentError(f"agent {name!r} ({ep.value}): the entry point must name a module that has"
                             f" {MANIFEST} next to its file")
        folder = Path(file).resolve().parent
        if not (folder / MANIFEST).is_file():
            raise AgentError(f"agent {name!r} ({ep.value}): no {MANIFEST} next to {file}")
        manifest = Manifest.from_file(folder)
        info = InstalledAgent.from_entry_point(ep)
        return _agent(name, folder, manifest, obj, f"{info.distribution} {info.version}", where=ep.value)


def _shown(text: str, limit: int = 80) -> str:
    """A reference for an error message: quoted, and shortened when it is very long."""
    return repr(text if len(text) <= limit else f"{text[:limit // 2]}…{text[-limit // 4:]}")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _unknown(name: str) -> str:
    installed = ", ".join(sorted({a.name for a in installed_agents()})) or "none"
    message = f"unknown agent {_shown(name)}: no installed agent has that name (installed: {installed})"
    try:
        here = (Path(name) / MANIFEST).is_file()
    except OSError:  # not a usable path at all (a name too long)
        here = False
    if here:
        return f"{message}; to run the folder {name} here, write ./{name}"
    return f"{message}, and a folder path needs a '/' (e.g. ./my-agent)"


# -- folder namespaces ------------------------------------------------------------------------

_namespaces: dict[str, _Namespace] = {}  # private package name -> its namespace
_namespaces_lock = threading.Lock()


class _Namespace:
    """One agent folder's private package, and the ``__import__`` its modules use."""

    def __init__(self, package: str, folder: Path) -> None:
        self.package = package
        self.folder = str(folder)
        self.builtins = {**builtins.__dict__, "__import__": self._import}
        self._owns: dict[str, bool] = {}
        self.loading = threading.RLock()

    def _import(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        top = name.partition(".")[0]
        if level or not self.owns(top):
            return builtins.__import__(name, globals, locals, fromlist, level)
        module = builtins.__import__(f"{self.package}.{name}", globals, locals, fromlist, 0)
        # `import a.b` binds the top-level `a`: here that is <package>.a, not the package itself.
        return module if fromlist else sys.modules[f"{self.package}.{top}"]

    def owns(self, top: str) -> bool:
        owned = self._owns.get(top)
        if owned is None:
            owned = self._owns[top] = self._finds(top)
        return owned

    def _finds(self, top: str) -> bool:
        if not top or top in sys.builtin_module_names:  # builtins win, as under `python main.py`
            return False
        spec = importlib.machinery.PathFinder.find_spec(top, [self.folder])
        if spec is None:
            return False
        # A directory without __init__.py is a namespace portion: Python prefers any real module.
        return spec.loader is not None or (top not in sys.modules
                                           and importlib.machinery.PathFinder.find_spec(top) is None)

    def forget(self) -> None:
        self._owns.clear()


class _NamespaceFinder:
    """On ``sys.meta_path``: finds the modules of registered agent packages in their folders and
    hands out loaders that set the agent's builtins before the module's code runs."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        namespace = _namespaces.get(fullname.partition(".")[0]) if fullname.startswith(PREFIX) else None
        if namespace is None or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _NamespaceLoader(spec.loader, namespace.builtins)
        return spec

    @staticmethod
    def invalidate_caches() -> None:
        for namespace in list(_namespaces.values()):
            namespace.forget()


class _NamespaceLoader(importlib.abc.Loader):
    """The file's own loader (source, bytecode or extension), with the agent's builtins."""

    def __init__(self, loader: Any, agent_builtins: dict[str, Any]) -> None:
        self._loader = loader
        self._builtins = agent_builtins

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__builtins__ = self._builtins  # type: ignore[attr-defined]
        self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, resource readers ...
        return getattr(self._loader, name)


def _register(folder: Path) -> _Namespace:
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
    package = f"{PREFIX}{re.sub(r'[^0-9A-Za-z_]', '_', folder.name)}_{digest}"
    with _namespaces_lock:
        namespace = _namespaces.setdefault(package, _Namespace(package, folder))
        if package not in sys.modules:
            module = ModuleType(package, f"the modules of the agent folder {folder}")
            module.__path__ = [str(folder)]
            module.__package__ = package
            module.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            module.__spec__.submodule_search_locations = module.__path__
            sys.modules[package] = module
        if _NamespaceFinder not in sys.meta_path:
            sys.meta_path.insert(0, _NamespaceFinder)
    return namespace


def _import_main(folder: Path, main: Path) -> ModuleType:
    namespace = _register(folder)
    with namespace.loading:  # one first import per folder at a time: a failed one cleans up alone
        try:
            return importlib.import_module(f"{namespace.package}.main")
        except BaseException as exc:  # SyntaxError, ImportError, anything the folder's code raises at import
            # Nothing half-imported stays: the folder, once fixed, imports afresh.
            for name in [n for n in sys.modules if n.startswith(namespace.package + ".")]:
                del sys.modules[name]
            if isinstance(exc, (TickloopError, KeyboardInterrupt)):
                raise
            where = _where(exc, folder, main)
            raise AgentError(f"{where}: cannot import the agent: {type(exc).__name__}: {exc}") from None


def _where(exc: BaseException, folder: Path, main: Path) -> str:
    """The file and line in the folder that failed: a syntax error's own, else the innermost frame."""
    inside = str(folder) + os.sep
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith(inside) and exc.lineno:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(inside)]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(main)


def _agent(ref: str, folder: Path, manifest: Manifest, module: Any, source: str, *, where: str) -> Agent:
    run = getattr(module, "run", None)
    if not callable(run):
        raise AgentError(f"{where}: the agent has no run(agent) function")
    unwind = getattr(module, "unwind", None)
    if unwind is not None and not callable(unwind):
        raise AgentError(f"{where}: unwind is not a function")
    return Agent(ref=ref, folder=folder, manifest=manifest, run=run, unwind=unwind, source=source)
