"""pytest fixtures for testing agents and plugins the way tickloop tests itself.

Installed as a pytest plugin (``pytest11`` entry point ``tickloop``), so they are available in
any project that has tickloop installed:

- ``tickloop_home``: an empty home folder.
- ``make_runtime(**options)``: a :class:`tickloop.Runtime` in that home with the ``inline``
  executor, closed after the test. ``options``: ``executor``, ``memory``, ``plugins`` (extra
  plugin objects), ``overrides`` (config sections), ``home``.
- ``tickloop_runtime``: ``make_runtime()``.
- ``agent_folder(main, name="probe", **manifest)``: writes an agent folder (circuit.toml +
  main.py) and returns its path; ``manifest`` keys override the minimal valid manifest, and a
  key set to ``None`` is left out.
``tickloop.testing.T0`` is the fixed, timezone-aware time runtimes start at (Monday 2026-01-05
12:00 UTC); pass ``clock=`` to ``make_runtime`` for another.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

MINIMAL_MANIFEST: dict[str, Any] = {
    "name": "probe",
    "tagline": "a test agent",
    "walletType": "ethereum",
    "allowedExecutionModes": ["auto", "manual"],
    "runtimeIntervalMinutes": 15,
    "schedule": "rolling",
    "version": "0.1.0",
}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def render_manifest(manifest: dict[str, Any], settings: dict[str, dict[str, Any]] | None = None) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in manifest.items() if value is not None]
    for key, spec in (settings or {}).items():
        lines.append(f"\n[settings.{key}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tickloop_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def agent_folder(tmp_path: Path) -> Callable[..., Path]:
    def make(main: str = "def run(agent):\n    pass\n", name: str = "probe",
             settings: dict[str, dict[str, Any]] | None = None, **manifest: Any) -> Path:
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "circuit.toml").write_text(render_manifest({**MINIMAL_MANIFEST, "name": name, **manifest}, settings))
        (folder / "main.py").write_text(textwrap.dedent(main))
        return folder

    return make


@pytest.fixture
def make_runtime(tickloop_home: Path) -> Iterator[Callable[..., Any]]:
    from tickloop.runtime import Runtime

    made: list[Runtime] = []

    def make(*, executor: str = "inline", memory: str = "memory", plugins: tuple[Any, ...] = (),
             overrides: dict[str, Any] | None = None, home: Path | None = None,
             clock: Callable[[], datetime] | None = None) -> Runtime:
        sections: dict[str, Any] = {"runtime": {"executor": executor}, "memory": {"backend": memory}}
        for section, values in (overrides or {}).items():
            sections[section] = {**sections.get(section, {}), **values}
        rt = Runtime.from_config(home=home or tickloop_home, overrides=sections, plugins=plugins,
                                 clock=clock or (lambda: T0))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def tickloop_runtime(make_runtime: Callable[..., Any]) -> Any:
    return make_runtime()
