"""Shared test set-up: no third-party plugins, and never the user's real home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# Tests see tickloop's own plugins only, whatever else is installed in the environment.
os.environ["TICKLOOP_DISABLE_PLUGIN_AUTOLOAD"] = "1"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKLOOP_HOME", str(tmp_path_factory.mktemp("default-home")))
    for name in list(os.environ):
        if name.startswith("TICKLOOP_") and "__" in name:
            monkeypatch.delenv(name)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The simulated test venue (tests/sim_venue.py), reset, journaling in memory."""
    import sim_venue

    monkeypatch.delenv("SIM_VENUE_JOURNAL", raising=False)
    sim_venue.reset()
    yield sim_venue
    sim_venue.reset()
