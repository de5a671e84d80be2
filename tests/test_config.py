"""tickloop.toml, environment overrides, and the errors for bad configuration."""

from __future__ import annotations

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
    with pytest.raises(ConfigError, match="runtime.workers: must be a whole number from 1 to 256, got 0"):
        Config.load(home=tmp_path / "other", env={}, overrides={"runtime": {"workers": 0}})


def test_unreadable_and_missing_files(tmp_path):
    """Broken TOML names the file and position; an explicit --config that does not exist is an error."""
    (tmp_path / "tickloop.toml").write_text("[runtime\n")
    with pytest.raises(ConfigError, match=r"tickloop.toml: invalid TOML at line 1, column 9"):
        Config.load(home=tmp_path, env={})
    with pytest.raises(ConfigError, match="nope.toml: no such file"):
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
