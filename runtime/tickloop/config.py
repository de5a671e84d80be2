"""Runtime configuration: ``tickloop.toml`` in the home folder, overridden by ``TICKLOOP_*``.

Environment overrides use ``TICKLOOP_<SECTION>__<KEY>`` (two underscores between section and
key), e.g. ``TICKLOOP_RUNTIME__EXECUTOR=process``; values are read as TOML scalars when they
parse as one (``3``, ``1.5``, ``true``) and as strings otherwise.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from tickloop.errors import ConfigError, InputError, Problem
from tickloop.files import parse_toml, read_text
from tickloop.ranges import Range, is_raw_amount, show

CONFIG_NAME = "tickloop.toml"
ENV_PREFIX = "TICKLOOP_"
# Environment variables with the prefix that are switches, not config keys.
ENV_SWITCHES = frozenset({"TICKLOOP_HOME", "TICKLOOP_CONFIG", "TICKLOOP_DISABLE_PLUGIN_AUTOLOAD", "TICKLOOP_PLUGINS",
                          "TICKLOOP_TRACE_PLUGINS"})


def default_home() -> Path:
    return Path(os.environ.get("TICKLOOP_HOME") or Path.home() / ".tickloop")


#: The range of every number key, by ``section.key`` (docs/guide.md's configuration table).
NUMBER_RANGES: dict[str, Range] = {
    "runtime.workers": Range(1, 256, whole=True),
    "runtime.run_timeout_seconds": Range(0, 7 * 86_400, above=True),  # a week
    "runtime.misfire_grace_seconds": Range(0, 365 * 86_400, above=True),  # a year
    "runtime.recovery_interval_seconds": Range(0, 86_400, above=True),  # a day
    "routing.manual_above_usd": Range(0, 1e12),
    "wallets.margin_warning": Range(0, 1000, above=True),  # above 1: in effect, never warn
    "api.port": Range(0, 65_535, whole=True),  # 0: any free port
}


def _number(key: str, default: float | None) -> Any:
    """A number field checked against ``NUMBER_RANGES[key]`` (None allowed when that is the
    default), when read from the file and when built in Python."""
    checked = NUMBER_RANGES[key]
    validator = attrs.validators.optional(checked) if default is None else checked
    return attrs.field(default=default, validator=validator, metadata={"range": checked})


@attrs.frozen
class RuntimeSection:
    executor: str = "process"
    workers: int = _number("runtime.workers", 4)
    run_timeout_seconds: float = _number("runtime.run_timeout_seconds", 300.0)
    missed_runs: Literal["coalesce", "skip"] = "coalesce"
    misfire_grace_seconds: float = _number("runtime.misfire_grace_seconds", 60.0)
    # How often serve settles what dead processes left (intents, approvals); see docs/reliability.md.
    recovery_interval_seconds: float = _number("runtime.recovery_interval_seconds", 60.0)
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


@attrs.frozen
class PluginsSection:
    block: list[str] = attrs.field(factory=list)
    # Plugin modules to import and register by dotted name (like pytest's -p): a plugin that is
    # not installed as a distribution, loaded in every process the runtime starts.
    load: list[str] = attrs.field(factory=list)


@attrs.frozen
class SuggestionsSection:
    store: str = "sql"


@attrs.frozen
class RoutingSection:
    # The example router (plugin "notional-guard"): suggest instead of execute any action worth
    # more than this many USD, even in auto mode. Unset: the guard does nothing.
    manual_above_usd: float | None = _number("routing.manual_above_usd", None)


def _raw_amount(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not is_raw_amount(value):
        raise ValueError(f"{attribute.name}: must be a whole number of raw units from 0 to 2**256 - 1,"
                         f" got {show(value)}")


@attrs.frozen
class WalletsSection:
    # What a paper wallet is funded with on first use, per starting asset, in raw units
    # (10,000 of a 6-decimal stablecoin).
    paper_funding: str = attrs.field(default="10000000000", converter=str, validator=_raw_amount)
    # Combined margin use of one account (used / value) above which `sessions show` warns.
    margin_warning: float = _number("wallets.margin_warning", 0.8)


@attrs.frozen
class ApiSection:
    host: str = "127.0.0.1"
    port: int = _number("api.port", 8377)
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
    def source(self) -> str:
        """Where the configuration came from, for error messages: its file, else "config"."""
        return str(self.path) if self.path else "config"

    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.home / 'state.db'}"

    def make_home(self) -> None:
        """Create the home folder (and its parents) if missing; ConfigError naming it when that
        cannot be done."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ConfigError(Problem(str(self.home), "", "cannot be the home folder: it exists and is not a"
                                                          " folder")) from None
        except OSError as exc:
            raise ConfigError(Problem(str(self.home), "", f"cannot create the home folder: {exc.strerror or exc}")) \
                from None

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
                raw = parse_toml(read_text(file_path), str(file_path))
            except InputError as exc:
                raise ConfigError(exc.problems) from None
        elif file:
            raise ConfigError(Problem(str(file_path), "", "no such file"))
        source = str(file_path) if file_path.exists() else "environment"
        raw = _apply_env(raw, env)
        for section, values in (overrides or {}).items():
            if isinstance(values, Mapping) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **values}
            else:
                raw[section] = dict(values) if isinstance(values, Mapping) else values
        overridden = {key: name for name in env if (key := _env_key(name))}
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


def _strings(value: Any, _: Any) -> list[str]:
    # cattrs would read block = "memory" as the list of its letters.
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f'must be a list of strings, like ["memory"], got {show(value)}')
    return list(value)


_converter.register_structure_hook_func(lambda t: t == list[str], _strings)


def _checked_number(checked: Range) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        # The value as written: cattrs' own int hook would turn 1.5 and true into 1.
        reason = None if value is None else checked.problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value

    return structure


for _section in (RuntimeSection, RoutingSection, WalletsSection, ApiSection):
    # cattrs types **kwargs as its flags, though it takes per-attribute overrides there too.
    _converter.register_structure_hook(_section, make_dict_structure_fn(_section, _converter, **{  # type: ignore[arg-type]
        field.name: override(struct_hook=_checked_number(field.metadata["range"]))
        for field in attrs.fields(_section) if "range" in field.metadata}))


def _format_exception(exc: BaseException, type_: Any) -> str:
    if get_origin(type_) is Literal:
        return "must be one of " + ", ".join(repr(a) for a in get_args(type_))
    if isinstance(exc, ValueError) and (type_ is None or str(exc).startswith("must be ")):
        return str(exc)  # an attrs validator's or one of our hooks' own message
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
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return text
