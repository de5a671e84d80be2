"""tickloop.toml, environment overrides, and the errors for bad configuration."""

from __future__ import annotations

import re

import pytest

from tickloop.config import Config
from tickloop.errors import ConfigError


def test_defaults_without_a_file(tmp_path):
    """With no file, every section has its default and the state lives in the home."""
    config = Config.load(home=tmp_path, env={})
    assert config.path is None
    assert (config.runtime.executor, config.runtime.missed_runs, config.memory.backend) == (
        "process", "coalesce", "diskcache")
    assert config.state_url == f"sqlite:///{tmp_path / 'state.db'}"


def test_file_then_environment_then_overrides(tmp_path):
    """The file is read, TICKLOOP_<SECTION>__<KEY> overrides it, and explicit overrides win last."""
    (tmp_path / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\nworkers = 2\n[venues.paper]\nfund = 5\n')
    env = {"TICKLOOP_RUNTIME__WORKERS": "6", "TICKLOOP_MEMORY__BACKEND": "memory", "TICKLOOP_HOME": "/ignored"}
    config = Config.load(home=tmp_path, env=env, overrides={"runtime": {"run_timeout_seconds": 2.5}})
    assert config.path == tmp_path / "tickloop.toml"
    assert (config.runtime.executor, config.runtime.workers, config.runtime.run_timeout_seconds) == ("inline", 6, 2.5)
    assert config.memory.backend == "memory" and config.venues == {"paper": {"fund": 5}}


def test_every_problem_is_reported_with_its_key(tmp_path):
    """Wrong types, bad choices, bounds and unknown keys are all reported, each with its key path."""
    (tmp_path / "tickloop.toml").write_text(
        '[runtime]\nworkers = "many"\nmissed_runs = "later"\nbogus = 1\n[memori]\nbackend = "x"\n')
    with pytest.raises(ConfigError) as info:
        Config.load(home=tmp_path, env={})
    text = str(info.value)
    file = str(tmp_path / "tickloop.toml")
    assert f'{file}: runtime.workers: must be a whole number from 1 to 256, got "many"' in text
    assert f"{file}: runtime.missed_runs: must be one of 'coalesce', 'skip'" in text
    assert f"{file}: runtime: unknown key(s) (bogus)" in text
    assert f"{file}: unknown key(s) (memori)" in text
    with pytest.raises(ConfigError, match=re.escape("runtime.workers: must be a whole number from 1 to 256, got 0")):
        Config.load(home=tmp_path / "other", env={}, overrides={"runtime": {"workers": 0}})


def test_unreadable_and_missing_files(tmp_path):
    """Broken TOML names the file and position; an explicit --config that does not exist is an error."""
    (tmp_path / "tickloop.toml").write_text("[runtime\n")
    with pytest.raises(ConfigError, match=r"tickloop.toml: invalid TOML at line 1, column 9"):
        Config.load(home=tmp_path, env={})
    with pytest.raises(ConfigError, match=re.escape("nope.toml: no such file")):
        Config.load(tmp_path / "nope.toml", home=tmp_path, env={})


def test_token_is_never_shown(tmp_path):
    """The API token does not appear in the config's repr."""
    config = Config.load(home=tmp_path, env={"TICKLOOP_API__TOKEN": "s3cret"})
    assert config.api.token == "s3cret" and "s3cret" not in repr(config)


def test_a_bad_environment_override_names_the_variable(tmp_path):
    """A wrong value that came from TICKLOOP_<SECTION>__<KEY> is reported against that variable."""
    (tmp_path / "tickloop.toml").write_text('[runtime]\nexecutor = "inline"\n')
    with pytest.raises(ConfigError, match=r"^TICKLOOP_RUNTIME__WORKERS: runtime.workers: must be a whole number"):
        Config.load(home=tmp_path, env={"TICKLOOP_RUNTIME__WORKERS": "lots"})


@pytest.mark.parametrize("bad", [1.5, True, 100_000, 0, float("nan"), "4", 4.0])
def test_workers_is_a_whole_number_in_range(tmp_path, bad):
    """cattrs used to turn 1.5 and true into 1, and nothing bounded it (issue #8)."""
    with pytest.raises(ConfigError, match=r"runtime\.workers: must be a whole number from 1 to 256, got "):
        Config.load(home=tmp_path, env={}, overrides={"runtime": {"workers": bad}})


@pytest.mark.parametrize(("section", "key", "bad"), [
    ("runtime", "run_timeout_seconds", float("nan")), ("runtime", "run_timeout_seconds", float("inf")),
    ("runtime", "run_timeout_seconds", 10**9), ("runtime", "misfire_grace_seconds", -1),
    ("wallets", "margin_warning", float("nan")), ("api", "port", -1), ("api", "port", 65_536),
    ("api", "port", True), ("routing", "manual_above_usd", float("inf")),
])
def test_every_number_key_refuses_values_out_of_its_range(tmp_path, section, key, bad):
    with pytest.raises(ConfigError, match=rf"^environment: {section}\.{key}: must be a (whole )?number"):
        Config.load(home=tmp_path, env={}, overrides={section: {key: bad}})


def test_numbers_in_range_are_kept_as_written(tmp_path):
    config = Config.load(home=tmp_path, env={"TICKLOOP_API__PORT": "0"}, overrides={
        "runtime": {"workers": 256, "run_timeout_seconds": 0.5}, "routing": {"manual_above_usd": 0}})
    assert (config.runtime.workers, config.runtime.run_timeout_seconds, config.api.port) == (256, 0.5, 0)
    assert config.routing.manual_above_usd == 0


def test_the_guide_lists_every_number_range():
    """docs/guide.md's tables give the same ranges the code enforces."""
    from pathlib import Path

    from tickloop.config import NUMBER_RANGES
    from tickloop.manifest import INTERVAL_MINUTES

    guide = (Path(__file__).resolve().parents[1] / "docs" / "guide.md").read_text()
    for key, checked in [*NUMBER_RANGES.items(), ("runtimeIntervalMinutes", INTERVAL_MINUTES)]:
        rows = [line for line in guide.splitlines() if line.startswith(f"| `{key}` | ")
                and ("number" in line.split("|")[2])]
        assert len(rows) == 1, key
        cells = rows[0].split("|")
        assert ("whole number" in cells[2]) == checked.whole, key
        low, high = (str(int(v)) if float(v).is_integer() else str(v) for v in (checked.low, checked.high))
        bounds = cells[3]
        assert (f"greater than {low}" in bounds if checked.above else bounds.lstrip().startswith(low)), key
        assert high in bounds, key
