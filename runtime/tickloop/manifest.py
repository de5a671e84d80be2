"""The agent manifest: ``circuit.toml`` read into checked, immutable value objects.

``Manifest.from_toml`` / ``Manifest.from_file`` check the whole file and raise one
:class:`~tickloop.errors.ManifestError` that lists every problem, each located by its key path
(``settings.max_orders.default``, ``startingAsset.minimumAmount``, ``schedule.timezone``).
``Manifest.resolve_settings`` turns session overrides (also ``--setting KEY=VALUE`` strings) into
the flat ``agent.settings`` dict. ``check_agent_folder`` is what ``tickloop check PATH`` reports.

The keys are Circuit's (G2/G3 ``circuit.toml``); beyond Circuit, ``schedule`` may be a table
``{cron = "...", timezone = "..."}``, in which case ``runtimeIntervalMinutes`` may be left out.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
import re
import warnings
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import attrs

from tickloop import schedule as _schedule_module
from tickloop.errors import InputError, ManifestError, Problem, SettingsError
from tickloop.files import parse_toml, read_bytes, read_text
from tickloop.ranges import INT64_MAX, INT64_MIN, Range, is_raw_amount, show
from tickloop.schedule import Schedule

MANIFEST_NAME = "circuit.toml"
MAIN_NAME = "main.py"

NAME_MAX = 32
TAGLINE_MAX = 32
WALLET_TYPES = ("ethereum", "solana")
EXECUTION_MODES = ("auto", "manual")
SCHEDULE_KINDS = ("rolling", "fixed")
DEPLOYMENT_REGIONS = ("us-east-1", "eu-central-1")
SETTING_TYPES = ("text", "boolean", "single_select", "integer", "number", "percentage", "address")

#: Every top-level key, in the order they are checked.
REQUIRED_KEYS = ("name", "tagline", "walletType", "allowedExecutionModes", "runtimeIntervalMinutes", "version")
EXTRA_KEYS = ("imageUrl", "category", "deploymentRegionOverride", "filesToInclude", "filesToExclude")
TABLE_KEYS = ("schedule", "startingAsset", "settings")
TOP_LEVEL_KEYS = REQUIRED_KEYS + TABLE_KEYS + EXTRA_KEYS
SETTING_KEYS = ("type", "description", "required", "default", "options")
STARTING_ASSET_KEYS = ("network", "address", "minimumAmount")
SCHEDULE_TABLE_KEYS = ("cron", "timezone")

# Keys of the older `.circuit.toml` (and of old Circuit pages), with what replaced them.
_LEGACY_KEYS = {
    "slug": "an old .circuit.toml key; an agent is identified by its name",
    "description": "an old .circuit.toml key; put the long description in DESCRIPTION.md",
    "shortDescription": "an old .circuit.toml key; use tagline",
    "defaultSleepIntervalMinutes": "an old .circuit.toml key; use runtimeIntervalMinutes",
    "allowedWalletTypes": 'an old .circuit.toml key; use walletType ("ethereum" or "solana")',
    "devRunExecutionMode": "an old .circuit.toml key; the first entry of allowedExecutionModes is the default mode",
    "benchmarkCurrency": "an old .circuit.toml table; it is no longer used",
    "requiredAssets": "an old .circuit.toml table; use a [startingAsset] table",
    "advancedSettings": "an old Circuit table; declare each setting as a [settings.<key>] table",
}
_SETTING_TYPE_HINTS = {
    "multi_select": "an old Circuit setting type that is no longer supported",
    "bool": 'did you mean "boolean"?',
    "int": 'did you mean "integer"?',
    "float": 'did you mean "number"?',
    "string": 'did you mean "text"?',
    "str": 'did you mean "text"?',
    "select": 'did you mean "single_select"?',
    "percent": 'did you mean "percentage"?',
}

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SOLANA_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
_RAW_AMOUNT = re.compile(r"[0-9]+")
#: runtimeIntervalMinutes: down to 6 ms (tests run sub-second schedules), up to 365 days.
INTERVAL_MINUTES = Range(0.0001, 525_600, unit="minutes")
_UNSET = object()
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


# -- value objects ---------------------------------------------------------------------------


@attrs.frozen
class Setting:
    """One ``[settings.<key>]`` declaration. ``default`` is None when none is declared."""

    key: str
    type: str
    description: str = ""
    required: bool = False
    default: Any = None
    options: tuple[str, ...] | None = None

    @classmethod
    def from_table(cls, key: str, table: Mapping[str, Any], *, wallet_type: str | None = None,
                   file: str = MANIFEST_NAME) -> Setting:
        """A setting from its TOML table; raises ManifestError listing every problem."""
        problems: list[Problem] = []
        setting = _parse_setting(key, table, wallet_type, _Collector(file, problems))
        if problems or setting is None:
            raise ManifestError(problems)
        return setting

    def check(self, value: Any, *, wallet_type: str | None = None) -> str | None:
        """The reason ``value`` (already of a Python type) does not fit this setting, or None."""
        return _check_value(self.type, value, options=self.options, wallet_type=wallet_type)

    def coerce(self, value: Any, *, wallet_type: str | None = None) -> tuple[Any, str | None]:
        """``value`` converted to this setting's type (strings are parsed) and the reason it does
        not fit, or None. Used for session overrides and ``--setting KEY=VALUE``."""
        return _coerce_value(self, value, wallet_type)


@attrs.frozen
class StartingAsset:
    """``[startingAsset]``: what a session is funded with. ``minimumAmount`` is raw base units."""

    network: str
    address: str
    minimumAmount: str

    @property
    def minimum_amount(self) -> int:
        return int(self.minimumAmount)


@attrs.frozen
class Manifest:
    """A checked ``circuit.toml``. ``settings`` keeps declaration order; ``extras`` holds the
    optional keys that tickloop keeps but does not act on (imageUrl, category, ...)."""

    name: str
    tagline: str
    walletType: str
    allowedExecutionModes: tuple[str, ...]
    runtimeIntervalMinutes: float | None
    schedule: Schedule
    version: str
    startingAsset: StartingAsset | None = None
    settings: dict[str, Setting] = attrs.field(factory=dict)
    extras: dict[str, Any] = attrs.field(factory=dict)
    file: str = MANIFEST_NAME

    @property
    def default_mode(self) -> str:
        """The mode a session gets when none is asked for: the first allowed one."""
        return self.allowedExecutionModes[0]

    @classmethod
    def from_toml(cls, text: str, *, file: str = MANIFEST_NAME) -> Manifest:
        """Parse and check ``circuit.toml`` text; raises ManifestError with every problem."""
        problems: list[Problem] = []
        manifest = _parse_text(text, file, problems)
        if problems or manifest is None:
            raise ManifestError(problems)
        return manifest

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``path``: a ``circuit.toml`` or an agent folder that contains one."""
        problems: list[Problem] = []
        manifest = _parse_path(Path(path), problems)
        if problems or manifest is None:
            raise ManifestError(problems)
        return manifest

    def resolve_settings(self, overrides: Mapping[str, Any] | None = None, *,
                         source: str = "settings") -> dict[str, Any]:
        """``agent.settings`` for a session: every declared setting (in declaration order) with its
        override or default, None when it has neither.

        Strings (from ``--setting KEY=VALUE``) are converted by the setting's type: ``true``/
        ``false`` (also yes/no, on/off, 1/0), ``3``, ``2.5``, ``50`` or ``50%``. Numbers from JSON
        are accepted for integer settings when they are whole (``3.0``). A None override counts as
        not given. Raises SettingsError (file ``source``, key ``settings.<key>``) listing every
        problem.
        """
        overrides = dict(overrides or {})
        problems: list[Problem] = []
        declared = list(self.settings)
        for key in overrides:
            if key not in self.settings:
                problems.append(Problem(source, f"settings.{key}", _unknown_setting_reason(key, declared)))
        resolved: dict[str, Any] = {}
        for key, setting in self.settings.items():
            value = overrides.get(key)
            if value is None:
                if setting.required and setting.default is None:
                    problems.append(Problem(source, f"settings.{key}", f"required; pass --setting {key}=VALUE"))
                resolved[key] = setting.default
                continue
            value, reason = setting.coerce(value, wallet_type=self.walletType)
            if reason is not None:
                problems.append(Problem(source, f"settings.{key}", reason))
            resolved[key] = value
        if problems:
            raise SettingsError(problems)
        return resolved


def check_agent_folder(path: str | os.PathLike[str]) -> list[Problem]:
    """Everything ``tickloop check PATH`` reports for an agent folder (or its ``circuit.toml``):
    the manifest's problems, and a missing ``main.py`` or one without a top-level ``run``.

    ``main.py`` is parsed with ``ast``, never imported or executed. An empty list means the agent
    is good to run.
    """
    path = Path(path)
    problems: list[Problem] = []
    _parse_path(path, problems)
    if not (_is(path.is_dir) or _is(path.is_file)):
        return problems  # missing, a device, a FIFO: its own problem says so
    folder = path if path.is_dir() else path.parent
    problems.extend(_check_main(folder / MAIN_NAME))
    return problems


# -- reading ---------------------------------------------------------------------------------


class _Collector:
    """Problems of one file, added by key path."""

    __slots__ = ("file", "problems")

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def add(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.file, key, reason))


def _is(test: Callable[[], bool]) -> bool:
    """``path.is_dir()`` and friends, False where the path cannot even be looked at (a name too
    long, a loop of links): reading it then reports why."""
    try:
        return test()
    except (OSError, ValueError):
        return False


def _parse_path(path: Path, problems: list[Problem]) -> Manifest | None:
    if _is(path.is_dir):
        file = path / MANIFEST_NAME
        if not _is(file.is_file):
            problems.append(Problem(str(path), "", f"no {MANIFEST_NAME} in {path}"))
            return None
    else:
        file = path
        try:
            if not path.exists():
                problems.append(Problem(str(path), "", "no such file or directory"))
                return None
        except (OSError, ValueError):
            pass  # a name too long, a loop of links: reading it says why
    try:
        text = read_text(file)
    except InputError as exc:
        problems.extend(exc.problems)
        return None
    return _parse_text(text, str(file), problems)


def _parse_text(text: str, file: str, problems: list[Problem]) -> Manifest | None:
    try:
        doc = parse_toml(text, file)
    except InputError as exc:
        problems.extend(exc.problems)
        return None
    before = len(problems)
    manifest = _parse_document(doc, _Collector(file, problems))
    return manifest if len(problems) == before else None


def _parse_document(doc: dict[str, Any], out: _Collector) -> Manifest | None:
    nested = _nested_top_level_keys(doc)

    def missing(key: str) -> None:
        if key not in nested:
            out.add(key, "required key is missing")

    name = _string(doc, "name", out, missing, max_len=NAME_MAX)
    tagline = _string(doc, "tagline", out, missing, max_len=TAGLINE_MAX)

    wallet_type = _string(doc, "walletType", out, missing)
    if wallet_type is not None and wallet_type not in WALLET_TYPES:
        out.add("walletType", f'must be "ethereum" or "solana", got {_show(wallet_type)}')
        wallet_type = None

    modes = _execution_modes(doc, out, missing)

    schedule_value = doc.get("schedule", "rolling")
    is_cron = isinstance(schedule_value, dict)
    interval = _interval(doc, out, missing, optional=is_cron)

    version = _string(doc, "version", out, missing)
    if version is not None and not _SEMVER.fullmatch(version):
        out.add("version", f'must be a semantic version major.minor.patch (like "1.0.0"), got {_show(version)}')

    schedule = _schedule(schedule_value, interval, out)

    extras: dict[str, Any] = {}
    for key in EXTRA_KEYS:
        if key in doc:
            if _check_extra(key, doc[key], out):
                extras[key] = doc[key]

    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            out.add(key, _unknown_key_reason(key, TOP_LEVEL_KEYS, top_level=True))

    starting_asset = _starting_asset(doc["startingAsset"], out) if "startingAsset" in doc else None
    # With no valid walletType, an address default may be either an Ethereum or a Solana address.
    settings = _settings(doc.get("settings", {}), wallet_type, out)

    if (name is None or tagline is None or wallet_type is None or modes is None or version is None
            or schedule is None or settings is None):
        return None
    return Manifest(
        name=name,
        tagline=tagline,
        walletType=wallet_type,
        allowedExecutionModes=modes,
        runtimeIntervalMinutes=interval,
        schedule=schedule,
        version=version,
        startingAsset=starting_asset,
        settings=settings,
        extras=extras,
        file=out.file,
    )


def _nested_top_level_keys(doc: Mapping[str, Any]) -> set[str]:
    """Known top-level keys that TOML put into a table because they were written after its
    [table] header (they are reported there, not also as missing)."""
    found: set[str] = set()
    for table_key in ("startingAsset", "schedule", "settings"):
        table = doc.get(table_key)
        if not isinstance(table, dict):
            continue
        for key, value in table.items():
            if table_key == "settings" and isinstance(value, dict):
                found.update(k for k in value if k in TOP_LEVEL_KEYS)  # inside [settings.<key>]
            elif key in TOP_LEVEL_KEYS:
                found.add(key)
    return found


def _string(doc: Mapping[str, Any], key: str, out: _Collector, missing: Callable[[str], None], *,
            max_len: int | None = None) -> str | None:
    if key not in doc:
        missing(key)
        return None
    value = doc[key]
    if not isinstance(value, str):
        out.add(key, f"must be a string, {_got(value)}")
        return None
    if not value.strip():
        out.add(key, "must not be empty")
        return None
    if max_len is not None and len(value) > max_len:
        out.add(key, f"must be at most {max_len} characters, got {len(value)}")
        return None
    return value


def _execution_modes(doc: Mapping[str, Any], out: _Collector, missing: Callable[[str], None]) -> tuple[str, ...] | None:
    key = "allowedExecutionModes"
    if key not in doc:
        missing(key)
        return None
    value = doc[key]
    allowed = '"auto", "manual"'
    if not isinstance(value, list):
        out.add(key, f'must be a list of modes, like ["auto", "manual"], {_got(value)}')
        return None
    if not value:
        out.add(key, f"must list at least one mode: {allowed}")
        return None
    ok = True
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item not in EXECUTION_MODES:
            out.add(key, f"unknown mode {_show(item)}; allowed: {allowed}")
            ok = False
        elif item in seen:
            out.add(key, f"{_show(item)} is listed twice")
            ok = False
        else:
            seen.add(item)
    return tuple(value) if ok else None


def _interval(doc: Mapping[str, Any], out: _Collector, missing: Callable[[str], None], *,
              optional: bool) -> float | None:
    key = "runtimeIntervalMinutes"
    if key not in doc:
        if not optional:
            missing(key)
        return None
    reason = INTERVAL_MINUTES.problem(doc[key])
    if reason is not None:
        out.add(key, reason)
        return None
    return doc[key]


def _schedule(value: Any, interval: float | None, out: _Collector) -> Schedule | None:
    if isinstance(value, str):
        if value not in SCHEDULE_KINDS:
            out.add("schedule", f'must be "rolling", "fixed" or a table {{cron = "...", timezone = "..."}}, '
                                f"got {_show(value)}")
            return None
        if interval is None:
            return None
        schedule = Schedule.rolling(interval) if value == "rolling" else Schedule.fixed(interval)
    elif isinstance(value, dict):
        ok = True
        for key in value:
            if key not in SCHEDULE_TABLE_KEYS:
                out.add(f"schedule.{key}", _unknown_key_reason(key, SCHEDULE_TABLE_KEYS, top_level=False))
                ok = False
        cron = value.get("cron")
        if "cron" not in value:
            out.add("schedule.cron", 'required key is missing (a cron expression, like "0 9 * * 1-5")')
            ok = False
        elif not isinstance(cron, str):
            out.add("schedule.cron", f"must be a string, {_got(cron)}")
            ok = False
        elif not _cron_is_valid(cron):
            out.add("schedule.cron", f'not a valid cron expression: {_show(cron)} (five fields: minute hour '
                                     f'day-of-month month day-of-week, like "*/15 * * * *")')
            ok = False
        timezone = value.get("timezone", "UTC")
        if not isinstance(timezone, str):
            out.add("schedule.timezone", f"must be a string, {_got(timezone)}")
            ok = False
        else:
            reason = _timezone_problem(timezone)
            if reason:
                out.add("schedule.timezone", reason)
                ok = False
        if not ok:
            return None
        schedule = Schedule.from_cron(cron, timezone)
    else:
        out.add("schedule", f'must be "rolling", "fixed" or a table {{cron = "...", timezone = "..."}}, {_got(value)}')
        return None
    validate = getattr(_schedule_module, "validate", None)
    if callable(validate):
        try:
            reason = validate(schedule)
        except Exception as exc:  # the validator is another module's; report, never crash a check
            reason = f"cannot be checked: {exc}"
        if reason:
            out.add("schedule", str(reason))
            return None
    return schedule


def _cron_is_valid(expression: str) -> bool:
    try:
        from croniter import croniter
    except ImportError:  # croniter is a dependency; without it, leave the check to the scheduler
        return True
    try:
        return bool(expression.strip()) and bool(croniter.is_valid(expression))
    except Exception:
        return False


def _timezone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    reason = f'unknown time zone {_show(name)}; use an IANA name like "UTC" or "Europe/Berlin"'
    try:
        names = zoneinfo.available_timezones()
    except Exception:
        names = set()
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.75)
    if close:
        reason += f"; did you mean {_show(by_lower[close[0]])}?"
    return reason


def _check_extra(key: str, value: Any, out: _Collector) -> bool:
    if key in ("filesToInclude", "filesToExclude"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            out.add(key, f"must be a list of paths (strings) relative to the agent folder, {_got(value)}")
            return False
        return True
    if not isinstance(value, str):
        out.add(key, f"must be a string, {_got(value)}")
        return False
    if key == "deploymentRegionOverride" and value not in DEPLOYMENT_REGIONS:
        out.add(key, f'must be "us-east-1" or "eu-central-1", got {_show(value)}')
        return False
    return True


def _starting_asset(value: Any, out: _Collector) -> StartingAsset | None:
    if not isinstance(value, dict):
        out.add("startingAsset",
                f"must be a table [startingAsset] with network, address and minimumAmount, {_got(value)}")
        return None
    ok = True
    fields: dict[str, str] = {}
    for key in STARTING_ASSET_KEYS:
        path = f"startingAsset.{key}"
        if key not in value:
            out.add(path, "required key is missing")
            ok = False
            continue
        item = value[key]
        if key == "minimumAmount":
            if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
                out.add(path, f'must be a string of digits in raw base units; write it in quotes: "{item}"')
                ok = False
                continue
            if not isinstance(item, str) or not _RAW_AMOUNT.fullmatch(item):
                out.add(path, f'must be a string of digits in raw base units (like "100000000" for 100 USDC), '
                              f"{_got(item)}")
                ok = False
                continue
            if not is_raw_amount(item):
                out.add(path, f"must be at most 2**256 - 1 raw units (78 digits), got {len(item)} digits")
                ok = False
                continue
        elif not isinstance(item, str):
            out.add(path, f"must be a string, {_got(item)}")
            ok = False
            continue
        elif key == "network" and not item.strip():
            out.add(path, 'must not be empty (a network like "ethereum:1", "solana" or "hypercore:perp")')
            ok = False
            continue
        fields[key] = item
    for key in value:
        if key not in STARTING_ASSET_KEYS:
            out.add(f"startingAsset.{key}", _unknown_key_reason(key, STARTING_ASSET_KEYS, top_level=False))
            ok = False
    return StartingAsset(**fields) if ok else None


def _settings(value: Any, wallet_type: str | None, out: _Collector) -> dict[str, Setting] | None:
    if not isinstance(value, dict):
        out.add("settings", f"must be tables [settings.<key>], {_got(value)}")
        return None
    result: dict[str, Setting] = {}
    ok = True
    for key, table in value.items():
        if not isinstance(table, dict):
            if key in TOP_LEVEL_KEYS:
                out.add(f"settings.{key}", _pitfall_reason(key))
            else:
                out.add(f"settings.{key}", f"must be a table [settings.{key}] with type and description, {_got(table)}")
            ok = False
            continue
        setting = _parse_setting(key, table, wallet_type, out)
        if setting is None:
            ok = False
        else:
            result[key] = setting
    return result if ok else None


def _parse_setting(key: str, table: Mapping[str, Any], wallet_type: str | None, out: _Collector) -> Setting | None:
    base = f"settings.{key}"
    ok = True
    for field in table:
        if field not in SETTING_KEYS:
            out.add(f"{base}.{field}", _unknown_key_reason(field, SETTING_KEYS, top_level=False))
            ok = False

    kind = table.get("type")
    types = ", ".join(SETTING_TYPES)
    if "type" not in table:
        out.add(f"{base}.type", f"required key is missing; one of {types}")
        kind = None
    elif not isinstance(kind, str):
        out.add(f"{base}.type", f"must be one of {types}; {_got(kind)}")
        kind = None
    elif kind not in SETTING_TYPES:
        hint = _SETTING_TYPE_HINTS.get(kind)
        prefix = f"{_show(kind)} is {hint}" if hint and not hint.startswith("did") else f"unknown type {_show(kind)}"
        suffix = f" ({hint})" if hint and hint.startswith("did") else ""
        out.add(f"{base}.type", f"{prefix}{suffix}; use one of the 7 types: {types}")
        kind = None

    description = table.get("description", "")
    if not isinstance(description, str):
        out.add(f"{base}.description", f"must be a string, {_got(description)}")
        ok = False

    required = table.get("required", False)
    if not isinstance(required, bool):
        out.add(f"{base}.required", f"must be true or false, {_got(required)}")
        ok = False

    options: tuple[str, ...] | None = None
    if "options" in table:
        raw = table["options"]
        if kind is not None and kind != "single_select":
            out.add(f"{base}.options", f"only single_select settings take options, this one is {kind}")
            ok = False
        elif not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
            out.add(f"{base}.options", f'must be a non-empty list of strings, like ["ETH", "BTC"], {_got(raw)}')
            ok = False
        else:
            dupes = sorted({o for o in raw if raw.count(o) > 1})
            if dupes:
                repeated = ", ".join(_show(d) for d in dupes)
                out.add(f"{base}.options", f"each option may appear once; repeated: {repeated}")
                ok = False
            else:
                options = tuple(raw)
    elif kind == "single_select":
        out.add(f"{base}.options", 'required for a single_select setting: a list of strings, like ["ETH", "BTC"]')
        ok = False

    default = table.get("default")
    if "default" in table and kind is not None and (kind != "single_select" or options is not None):
        reason = _check_value(kind, default, options=options, wallet_type=wallet_type)
        if reason:
            out.add(f"{base}.default", reason)
            ok = False

    if not ok or kind is None:
        return None
    return Setting(key=key, type=kind, description=description, required=required, default=default, options=options)


# -- setting values --------------------------------------------------------------------------


def _check_value(kind: str, value: Any, *, options: tuple[str, ...] | None, wallet_type: str | None,
                 given: Any = _UNSET) -> str | None:
    """Why ``value`` does not fit a setting of type ``kind``, or None. Messages show ``given``
    (the value as the user wrote it) when it differs from ``value``."""
    got = _got(value if given is _UNSET else given)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "text":
        return None if isinstance(value, str) else f"must be text (a string), {got}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"must be true or false, {got}"
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            if INT64_MIN <= value <= INT64_MAX:
                return None
            return f"must be an integer from {INT64_MIN} to {INT64_MAX} (64-bit), got {show(value)}"
        return f"must be an integer (a whole number), {got}"
    if kind == "number":
        if not is_number or not math.isfinite(value):
            return f"must be a number, {got}"
        return None
    if kind == "percentage":
        if not is_number or not math.isfinite(value) or not 0 <= value <= 100:
            return f"must be a percentage, a number from 0 to 100, {got}"
        return None
    if kind == "single_select":
        choices = ", ".join(_show(o) for o in options or ())
        if not isinstance(value, str) or value not in (options or ()):
            return f"must be one of the options {choices}, {got}"
        return None
    if kind == "address":
        return _address_problem(value, wallet_type, got)
    return f"unknown setting type {_show(kind)}"


def _address_problem(value: Any, wallet_type: str | None, got: str) -> str | None:
    evm = "0x followed by 40 hex digits"
    sol = "32 to 44 base58 characters"
    if wallet_type == "ethereum":
        ok = isinstance(value, str) and bool(_EVM_ADDRESS.fullmatch(value))
        what = f"an Ethereum address ({evm}), as walletType is ethereum"
    elif wallet_type == "solana":
        ok = isinstance(value, str) and bool(_SOLANA_ADDRESS.fullmatch(value))
        what = f"a Solana address ({sol}), as walletType is solana"
    else:
        ok = isinstance(value, str) and bool(_EVM_ADDRESS.fullmatch(value) or _SOLANA_ADDRESS.fullmatch(value))
        what = f"an Ethereum address ({evm}) or a Solana address ({sol})"
    return None if ok else f"must be {what}; {got}"


def _coerce_value(setting: Setting, value: Any, wallet_type: str | None) -> tuple[Any, str | None]:
    kind = setting.type
    if isinstance(value, str) and kind in ("boolean", "integer", "number", "percentage"):
        text = value.strip()
        if kind == "boolean":
            lowered = text.lower()
            if lowered in _TRUE:
                return True, None
            if lowered in _FALSE:
                return False, None
            return value, f"must be true or false, got {_show(value)}"
        if kind == "percentage" and text.endswith("%"):
            text = text[:-1].strip()
        parsed = _parse_number(text, integer=kind == "integer")
        if parsed is None:
            what = {"integer": "an integer (a whole number)", "number": "a number",
                    "percentage": "a percentage, a number from 0 to 100"}[kind]
            return value, f"must be {what}, got {_show(value)}"
        return parsed, _check_value(kind, parsed, options=setting.options, wallet_type=wallet_type, given=value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON numbers: {"number": 3.0} for an integer setting
    return value, setting.check(value, wallet_type=wallet_type)


def _parse_number(text: str, *, integer: bool) -> int | float | None:
    """``text`` as an int (or, unless ``integer``, a finite float); None when it is not one.
    A whole float such as ``3.0`` is accepted for an integer."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if integer:
        return int(number) if number.is_integer() else None
    return number


def _unknown_setting_reason(key: str, declared: list[str]) -> str:
    if not declared:
        return "unknown setting; this agent declares no settings"
    reason = "unknown setting; declared settings: " + ", ".join(declared)
    close = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
    if close:
        reason = f"unknown setting; did you mean {close[0]}? Declared settings: " + ", ".join(declared)
    return reason


# -- messages --------------------------------------------------------------------------------


def _pitfall_reason(key: str) -> str:
    return (f"top-level key {key} must come before the first [table] header "
            "(TOML puts keys written after a [table] header into that table)")


def _unknown_key_reason(key: str, known: tuple[str, ...], *, top_level: bool) -> str:
    if not top_level and key in TOP_LEVEL_KEYS:
        return _pitfall_reason(key)
    if top_level and key in _LEGACY_KEYS:
        return f"unknown key: {_LEGACY_KEYS[key]}"
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {by_lower[close[0]]}?"
    return "unknown key; known keys: " + ", ".join(known)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (datetime, date, time)):
        return "date/time"
    if value is None:
        return "nothing"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    """``value`` as it would be written in TOML (strings in double quotes), shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {_show(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(value: Any) -> str:
    """"got <kind> <value>" for a message; strings show as themselves, in double quotes."""
    if value is None:
        return "got nothing"
    if isinstance(value, str):
        return f"got {_show(value)}"
    return f"got {_kind(value)} {_show(value)}"


# -- main.py ---------------------------------------------------------------------------------


def _check_main(main: Path) -> list[Problem]:
    file = str(main)
    if not main.is_file():
        return [Problem(file, "", f"missing: an agent folder needs {MAIN_NAME} defining run(agent)")]
    try:
        source = read_bytes(main)
    except InputError as exc:
        return exc.problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences: not ours to report
            tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        where = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "unknown position"
        return [Problem(file, "", f"syntax error at {where}: {exc.msg}")]
    except ValueError as exc:  # null bytes, undecodable source
        return [Problem(file, "", f"cannot be parsed: {exc}")]
    except (RecursionError, MemoryError):
        return [Problem(file, "", "cannot be parsed: nested too deeply")]

    bindings = _top_level_bindings(tree.body)
    problems: list[Problem] = []
    run = bindings.get("run")
    if run is None:
        problems.append(Problem(file, "run", "no top-level run function; define def run(agent): ..."))
    else:
        problems.extend(_check_function(file, "run", run, "def run(agent)"))
    unwind = bindings.get("unwind")
    if unwind is not None:
        problems.extend(_check_function(file, "unwind", unwind, "def unwind(agent, portfolio)"))
    return problems


def _check_function(file: str, name: str, node: ast.AST, shape: str) -> list[Problem]:
    # async def is fine: the built-in run call drives a coroutine to completion.
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        if not (args.posonlyargs or args.args or args.vararg):
            return [Problem(file, name, f"must take the agent context as its first parameter: {shape}")]
    return []


def _top_level_bindings(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names bound at module level (also inside top-level if/try/with blocks) to their node."""
    found: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            if not isinstance(node, ast.AnnAssign) or node.value is not None:
                found[node.target.id] = node
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found[alias.asname or alias.name] = node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found.update(_top_level_bindings(node.body))
                found.update(_top_level_bindings(node.orelse))
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                found.update(_top_level_bindings(block))
        elif isinstance(node, ast.With):
            found.update(_top_level_bindings(node.body))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
