"""Finding and loading agents: ``tickloop.agents`` entry points and agent folders.

An agent folder holds ``circuit.toml`` and ``main.py`` with a module-level ``run(agent)`` and an
optional ``unwind(agent, portfolio)``. An installed agent is an entry point in the
``tickloop.agents`` group whose value is a module laid out the same way: ``circuit.toml`` sits
next to the module's file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import attrs

from tickloop.errors import AgentError, TickloopError, UnknownAgentError
from tickloop.manifest import Manifest

GROUP = "tickloop.agents"
MANIFEST = "circuit.toml"
MAIN = "main.py"


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


def is_folder_ref(ref: str) -> bool:
    """A path (it has a separator or starts with '.'), or a bare name that is no installed agent
    but a folder here: an installed agent wins over a same-named folder in the working directory."""
    if "/" in ref or "\\" in ref or ref.startswith("."):
        return True
    return Path(ref).is_dir() and not any(ep.name == ref for ep in importlib.metadata.entry_points(group=GROUP))


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
            return str(folder.resolve())
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
        if not (folder / MANIFEST).is_file():
            what = "no such folder" if not folder.exists() else f"no {MANIFEST} in it"
            raise UnknownAgentError(f"agent {str(folder)!r}: {what}")
        manifest = Manifest.from_file(folder)
        main = folder / MAIN
        if not main.is_file():
            raise AgentError(f"{main}: missing (an agent folder needs main.py with a run(agent) function)")
        digest = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
        slug = re.sub(r"\W", "_", folder.name)
        module = _import_file(f"tickloop_agent_{slug}_{digest}", main, folder)
        return _agent(str(folder), folder, manifest, module, "folder", where=str(main))

    def _load_entry_point(self, name: str) -> Agent:
        matches = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
        if not matches:
            names = ", ".join(a.name for a in installed_agents()) or "none"
            raise UnknownAgentError(
                f"unknown agent {name!r}: not an installed agent (installed: {names}) and not an agent folder"
                " (a folder path needs a '/', e.g. ./my-agent)"
            )
        ep = matches[0]
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


def _import_file(module_name: str, path: Path, folder: Path) -> ModuleType:
    # The folder goes on sys.path so main.py can import its sibling modules, as it would under
    # `python main.py`; the module gets a unique name so two agents' main.py never collide.
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except TickloopError:
        raise
    except BaseException as exc:  # SyntaxError, ImportError, or anything main.py raises at import
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise AgentError(f"{where}: cannot import the agent: {type(exc).__name__}: {exc}") from None
    return module


def _agent(ref: str, folder: Path, manifest: Manifest, module: Any, source: str, *, where: str) -> Agent:
    run = getattr(module, "run", None)
    if not callable(run):
        raise AgentError(f"{where}: the agent has no run(agent) function")
    unwind = getattr(module, "unwind", None)
    if unwind is not None and not callable(unwind):
        raise AgentError(f"{where}: unwind is not a function")
    return Agent(ref=ref, folder=folder, manifest=manifest, run=run, unwind=unwind, source=source)
