"""Settings: the ``[settings.<key>]`` declarations of ``circuit.toml`` (the schema), and the values
a session gives them (checked, converted from ``--setting KEY=VALUE`` strings, resolved against
the declared defaults)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from tickloop.errors import ManifestError, Problem, SettingsError
from tickloop.manifest.problems import Collector, got, pitfall_reason, show, unknown_key_reason
from tickloop.manifest.vocabulary import (
    MANIFEST_NAME,
    SETTING_KEYS,
    SETTING_TYPES,
    TOP_LEVEL_KEYS,
    SettingType,
    WalletType,
)
from tickloop.ranges import INT64_MAX, INT64_MIN
from tickloop.ranges import show as show_number

TEXT, BOOLEAN, SINGLE_SELECT, INTEGER, NUMBER, PERCENTAGE, ADDRESS = SettingType

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
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SOLANA_ADDRESS = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
_UNSET = object()
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
# Types whose values may be given as strings to parse (``--setting KEY=VALUE``), and what they must be.
_PARSED = {INTEGER: "an integer (a whole number)", NUMBER: "a number",
           PERCENTAGE: "a percentage, a number from 0 to 100"}


@attrs.frozen
class Setting:
    """One ``[settings.<key>]`` declaration. ``default`` is None when none is declared."""

    key: str
    type: SettingType
    description: str = ""
    required: bool = False
    default: Any = None
    options: tuple[str, ...] | None = None

    @classmethod
    def from_table(cls, key: str, table: Mapping[str, Any], *, wallet_type: str | None = None,
                   file: str = MANIFEST_NAME) -> Setting:
        """A setting from its TOML table; raises ManifestError listing every problem."""
        problems: list[Problem] = []
        setting = parse_setting(key, table, wallet_type, Collector(file, problems))
        if problems or setting is None:
            raise ManifestError(problems)
        return setting

    def check(self, value: Any, *, wallet_type: str | None = None) -> str | None:
        """The reason ``value`` (already of a Python type) does not fit this setting, or None."""
        return check_value(self.type, value, options=self.options, wallet_type=wallet_type)

    def coerce(self, value: Any, *, wallet_type: str | None = None) -> tuple[Any, str | None]:
        """``value`` converted to this setting's type (strings are parsed) and the reason it does
        not fit, or None. Used for session overrides and ``--setting KEY=VALUE``."""
        return _coerce_value(self, value, wallet_type)


# -- the schema ------------------------------------------------------------------------------


def parse_settings(value: Any, wallet_type: str | None, out: Collector) -> dict[str, Setting] | None:
    """The ``[settings]`` table: every declaration, in order, or None when one has a problem."""
    if not isinstance(value, dict):
        out.add("settings", f"must be tables [settings.<key>], {got(value)}")
        return None
    result: dict[str, Setting] = {}
    ok = True
    for key, table in value.items():
        if not isinstance(table, dict):
            if key in TOP_LEVEL_KEYS:
                out.add(f"settings.{key}", pitfall_reason(key))
            else:
                out.add(f"settings.{key}", f"must be a table [settings.{key}] with type and description, {got(table)}")
            ok = False
            continue
        setting = parse_setting(key, table, wallet_type, out)
        if setting is None:
            ok = False
        else:
            result[key] = setting
    return result if ok else None


def parse_setting(key: str, table: Mapping[str, Any], wallet_type: str | None, out: Collector) -> Setting | None:
    """One ``[settings.<key>]`` table, or None when it has a problem (each one added to ``out``)."""
    base = f"settings.{key}"
    ok = True
    for field in table:
        if field not in SETTING_KEYS:
            out.add(f"{base}.{field}", unknown_key_reason(field, SETTING_KEYS, top_level=False))
            ok = False

    kind = _setting_type(table, base, out)

    description = table.get("description", "")
    if not isinstance(description, str):
        out.add(f"{base}.description", f"must be a string, {got(description)}")
        ok = False

    required = table.get("required", False)
    if not isinstance(required, bool):
        out.add(f"{base}.required", f"must be true or false, {got(required)}")
        ok = False

    options_ok, options = _options(table, kind, base, out)
    ok = ok and options_ok

    default = table.get("default")
    if "default" in table and kind is not None and (kind != SINGLE_SELECT or options is not None):
        reason = check_value(kind, default, options=options, wallet_type=wallet_type)
        if reason:
            out.add(f"{base}.default", reason)
            ok = False

    if not ok or kind is None:
        return None
    return Setting(key=key, type=kind, description=description, required=required, default=default, options=options)


def _setting_type(table: Mapping[str, Any], base: str, out: Collector) -> SettingType | None:
    kind = table.get("type")
    types = ", ".join(SETTING_TYPES)
    if "type" not in table:
        out.add(f"{base}.type", f"required key is missing; one of {types}")
        return None
    if not isinstance(kind, str):
        out.add(f"{base}.type", f"must be one of {types}; {got(kind)}")
        return None
    if kind not in SETTING_TYPES:
        hint = _SETTING_TYPE_HINTS.get(kind)
        prefix = f"{show(kind)} is {hint}" if hint and not hint.startswith("did") else f"unknown type {show(kind)}"
        suffix = f" ({hint})" if hint and hint.startswith("did") else ""
        out.add(f"{base}.type", f"{prefix}{suffix}; use one of the 7 types: {types}")
        return None
    return SettingType(kind)


def _options(table: Mapping[str, Any], kind: SettingType | None, base: str,
             out: Collector) -> tuple[bool, tuple[str, ...] | None]:
    """Whether ``options`` is right for a setting of type ``kind``, and the options."""
    if "options" not in table:
        if kind == SINGLE_SELECT:
            out.add(f"{base}.options", 'required for a single_select setting: a list of strings, like ["ETH", "BTC"]')
            return False, None
        return True, None
    raw = table["options"]
    if kind is not None and kind != SINGLE_SELECT:
        out.add(f"{base}.options", f"only single_select settings take options, this one is {kind}")
        return False, None
    if not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
        out.add(f"{base}.options", f'must be a non-empty list of strings, like ["ETH", "BTC"], {got(raw)}')
        return False, None
    dupes = sorted({o for o in raw if raw.count(o) > 1})
    if dupes:
        repeated = ", ".join(show(d) for d in dupes)
        out.add(f"{base}.options", f"each option may appear once; repeated: {repeated}")
        return False, None
    return True, tuple(raw)


# -- values ----------------------------------------------------------------------------------


def resolve_settings(settings: Mapping[str, Setting], overrides: Mapping[str, Any] | None, *,
                     wallet_type: str | None, source: str) -> dict[str, Any]:
    """Every declared setting (in declaration order) with its override or default; see
    :meth:`~tickloop.manifest.Manifest.resolve_settings`. Raises SettingsError."""
    overrides = dict(overrides or {})
    problems: list[Problem] = []
    declared = list(settings)
    for key in overrides:
        if key not in settings:
            problems.append(Problem(source, f"settings.{key}", _unknown_setting_reason(key, declared)))
    resolved: dict[str, Any] = {}
    for key, setting in settings.items():
        value = overrides.get(key)
        if value is None:
            if setting.required and setting.default is None:
                problems.append(Problem(source, f"settings.{key}", f"required; pass --setting {key}=VALUE"))
            resolved[key] = setting.default
            continue
        value, reason = setting.coerce(value, wallet_type=wallet_type)
        if reason is not None:
            problems.append(Problem(source, f"settings.{key}", reason))
        resolved[key] = value
    if problems:
        raise SettingsError(problems)
    return resolved


def check_value(kind: str, value: Any, *, options: tuple[str, ...] | None, wallet_type: str | None,
                given: Any = _UNSET) -> str | None:
    """Why ``value`` does not fit a setting of type ``kind``, or None. Messages show ``given``
    (the value as the user wrote it) when it differs from ``value``."""
    gave = got(value if given is _UNSET else given)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == TEXT:
        return None if isinstance(value, str) else f"must be text (a string), {gave}"
    if kind == BOOLEAN:
        return None if isinstance(value, bool) else f"must be true or false, {gave}"
    if kind == INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            if INT64_MIN <= value <= INT64_MAX:
                return None
            return f"must be an integer from {INT64_MIN} to {INT64_MAX} (64-bit), got {show_number(value)}"
        return f"must be an integer (a whole number), {gave}"
    if kind == NUMBER:
        if not is_number or not math.isfinite(value):
            return f"must be a number, {gave}"
        return None
    if kind == PERCENTAGE:
        if not is_number or not math.isfinite(value) or not 0 <= value <= 100:
            return f"must be a percentage, a number from 0 to 100, {gave}"
        return None
    if kind == SINGLE_SELECT:
        choices = ", ".join(show(o) for o in options or ())
        if not isinstance(value, str) or value not in (options or ()):
            return f"must be one of the options {choices}, {gave}"
        return None
    if kind == ADDRESS:
        return _address_problem(value, wallet_type, gave)
    return f"unknown setting type {show(kind)}"


def _address_problem(value: Any, wallet_type: str | None, gave: str) -> str | None:
    evm = "0x followed by 40 hex digits"
    sol = "32 to 44 base58 characters"
    if wallet_type == WalletType.ETHEREUM:
        ok = isinstance(value, str) and bool(_EVM_ADDRESS.fullmatch(value))
        what = f"an Ethereum address ({evm}), as walletType is ethereum"
    elif wallet_type == WalletType.SOLANA:
        ok = isinstance(value, str) and bool(_SOLANA_ADDRESS.fullmatch(value))
        what = f"a Solana address ({sol}), as walletType is solana"
    else:
        ok = isinstance(value, str) and bool(_EVM_ADDRESS.fullmatch(value) or _SOLANA_ADDRESS.fullmatch(value))
        what = f"an Ethereum address ({evm}) or a Solana address ({sol})"
    return None if ok else f"must be {what}; {gave}"


def _coerce_value(setting: Setting, value: Any, wallet_type: str | None) -> tuple[Any, str | None]:
    kind = setting.type
    if isinstance(value, str) and (kind == BOOLEAN or kind in _PARSED):
        text = value.strip()
        if kind == BOOLEAN:
            lowered = text.lower()
            if lowered in _TRUE:
                return True, None
            if lowered in _FALSE:
                return False, None
            return value, f"must be true or false, got {show(value)}"
        if kind == PERCENTAGE and text.endswith("%"):
            text = text[:-1].strip()
        parsed = _parse_number(text, integer=kind == INTEGER)
        if parsed is None:
            return value, f"must be {_PARSED[kind]}, got {show(value)}"
        return parsed, check_value(kind, parsed, options=setting.options, wallet_type=wallet_type, given=value)
    if kind == INTEGER and isinstance(value, float) and value.is_integer():
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
