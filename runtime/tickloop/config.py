"""Runtime configuration: ``tickloop.toml`` in the home folder, overridden by ``TICKLOOP_*``.

Environment overrides use ``TICKLOOP_<SECTION>__<KEY>`` (two underscores between section and
key), e.g. ``TICKLOOP_RUNTIME__EXECUTOR=process``; values are read as TOML scalars when they
parse as one (``3``, ``1.5``, ``true``) and as strings otherwise.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping, get_args, get_origin

import attrs
import cattrs
from cattrs.v import format_exception

from tickloop.errors import ConfigError, Problem

CONFIG_NAME = "tickloop.toml"
ENV_PREFIX = "TICKLOOP_"
# Environment variables with the prefix that are switches, not config keys.
ENV_SWITCHES = frozenset({"TICKLOOP_HOME", "TICKLOOP_CONFIG", "TICKLOOP_DISABLE_PLUGIN_AUTOLOAD", "TICKLOOP_PLUGINS",
                          "TICKLOOP_TRACE_PLUGINS"})


def default_home() -> Path:
    return Path(os.environ.get("TICKLOOP_HOME") or Path.home() / ".tickloop")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: must be greater than 0, got {value}")


@attrs.frozen
class RuntimeSection:
    executor: str = "process"
    workers: int = attrs.field(default=4, validator=_positive)
    run_timeout_seconds: float = attrs.field(default=300.0, validator=_positive)
    missed_runs: Literal["coalesce", "skip"] = "coalesce"
    misfire_grace_seconds: float = attrs.field(default=60.0, validator=_positive)
    # How often serve settles what dead processes left (intents, approvals); see docs/reliability.md.
    recovery_interval_seconds: float = attrs.field(default=60.0, validator=_positive)
    # How agent processes are isolated (the process executor): "auto" sandboxes them with
    # bubblewrap when it is installed, "bwrap" requires it, "none" does not sandbox.
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    # Extra environment variables agent processes get (names or fnmatch patterns); keys and
    # tickloop's secrets are never passed.
    worker_env: list[str] = attrs.field(factory=list)


@attrs.frozen
class StateSection:
    url: str = ""  # empty: SQLite file state.db in the home


@attrs.frozen
class MemorySection:
    backend: str = "diskcache"
    url: str = ""  # for networked backends (redis://...)


@attrs.frozen
class PluginsSection:
    block: list[str] = attrs.field(factory=list)
    # Plugin modules to import and register by dotted name (like pytest's -p): a plugin that is
    # not installed as a distribution, loaded in every process the runtime starts.
    load: list[str] = attrs.field(factory=list)


@attrs.frozen
class SuggestionsSection:
    store: str = "sql"


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name}: must be 0 or more, got {value}")


@attrs.frozen
class RoutingSection:
    # The example router (plugin "notional-guard"): suggest instead of execute any action worth
    # more than this many USD, even in auto mode. Unset: the guard does nothing.
    manual_above_usd: float | None = attrs.field(default=None, validator=_non_negative)


def _digits(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not str(value).isdigit():
        raise ValueError(f"{attribute.name}: must be a whole number of raw units, got {value!r}")


@attrs.frozen
class WalletsSection:
    # What a paper wallet is funded with on first use, per starting asset, in raw units
    # (10,000 of a 6-decimal stablecoin).
    paper_funding: str = attrs.field(default="10000000000", converter=str, validator=_digits)
    # Combined margin use of one account (used / value) above which `sessions show` warns.
    margin_warning: float = attrs.field(default=0.8, validator=_positive)


@attrs.frozen
class ApiSection:
    host: str = "127.0.0.1"
    port: int = 8377
    token: str = attrs.field(default="", repr=False)


@attrs.frozen(kw_only=True)
class Sections:
    """The sections of ``tickloop.toml``, as the file holds them."""

    runtime: RuntimeSection = RuntimeSection()
    state: StateSection = StateSection()
    memory: MemorySection = MemorySection()
    plugins: PluginsSection = PluginsSection()
    suggestions: SuggestionsSection = SuggestionsSection()
    routing: RoutingSection = RoutingSection()
    wallets: WalletsSection = WalletsSection()
    api: ApiSection = ApiSection()
    venues: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Config(Sections):
    """Everything a runtime needs to start, structured and checked."""

    home: Path
    path: Path | None = None  # the file it was read from, if any

    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.home / 'state.db'}"

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
        """Read the config file (``path``, else ``TICKLOOP_CONFIG``, else ``<home>/tickloop.toml`` if
        it exists), apply environment overrides, then ``overrides`` (nested sections, as in the
        file), and check every key."""
        env = os.environ if env is None else env
        home_path = Path(home or env.get("TICKLOOP_HOME") or default_home()).expanduser().absolute()
        file = path or env.get("TICKLOOP_CONFIG")
        file_path = Path(file).expanduser() if file else home_path / CONFIG_NAME
        raw: dict[str, Any] = {}
        if file_path.exists():
            try:
                raw = tomllib.loads(file_path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(Problem(str(file_path), "", f"not valid TOML: {exc}")) from None
            except OSError as exc:
                raise ConfigError(Problem(str(file_path), "", f"cannot read: {exc.strerror}")) from None
        elif file:
            raise ConfigError(Problem(str(file_path), "", "no such file"))
        source = str(file_path) if file_path.exists() else "environment"
        raw = _apply_env(raw, env)
        for section, values in (overrides or {}).items():
            if isinstance(values, Mapping) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **values}
            else:
                raw[section] = dict(values) if isinstance(values, Mapping) else values
        overridden = {_env_key(name): name for name in env if _env_key(name)}
        return cls.from_dict(raw, home=home_path, path=file_path if file_path.exists() else None, source=source,
                             overridden=overridden)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, home: Path, path: Path | None = None,
                  source: str = "config", overridden: Mapping[str, str] | None = None) -> Config:
        """Structure and check ``raw``; ``overridden`` maps ``section.key`` to the environment
        variable that set it, so a problem names the variable rather than the file."""
        try:
            sections = _converter.structure(dict(raw), Sections)
        except cattrs.BaseValidationError as exc:
            messages = cattrs.transform_error(exc, format_exception=_format_exception)
            raise ConfigError([_problem(source, msg, overridden or {}) for msg in messages]) from None
        return cls(home=home, path=path, **attrs.asdict(sections, recurse=False))


_converter = cattrs.Converter(forbid_extra_keys=True)


def _format_exception(exc: BaseException, type_: Any) -> str:
    if get_origin(type_) is Literal:
        return "must be one of " + ", ".join(repr(a) for a in get_args(type_))
    if isinstance(exc, ValueError) and type_ is None:
        return str(exc)  # an attrs validator's own message
    return format_exception(exc, type_)


def _env_key(name: str) -> str | None:
    """``section.key`` for a ``TICKLOOP_<SECTION>__<KEY>`` variable, else None."""
    if not name.startswith(ENV_PREFIX) or name in ENV_SWITCHES or "__" not in name:
        return None
    section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
    return f"{section}.{key}"


def _problem(source: str, message: str, overridden: Mapping[str, str]) -> Problem:
    # cattrs says "<reason> @ $.section.key"; turn that into file, key and reason.
    reason, _, where = message.rpartition(" @ ")
    if not reason:
        reason, where = message, ""
    key = where.removeprefix("$").lstrip(".")
    # Our validators run in a section's __init__, so cattrs places them at the section; their
    # message starts with "<field>: ", which belongs in the key.
    field, sep, rest = reason.partition(": ")
    if sep and field.isidentifier() and "." not in key and key:
        key, reason = f"{key}.{field}", rest
    source = overridden.get(key, source)
    if reason.startswith("extra fields found"):
        return Problem(source, key, reason.replace("extra fields found", "unknown key(s)"))
    return Problem(source, key, reason)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, text in env.items():
        path = _env_key(name)
        if path is None:
            continue
        section, _, key = path.partition(".")
        merged.setdefault(section, {})
        if isinstance(merged[section], dict):
            merged[section][key] = _scalar(text)
    return merged


def _scalar(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
