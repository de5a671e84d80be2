"""Reading ``circuit.toml``: the file (or agent folder), its TOML, and its top-level keys, each
checked, every problem located by its key path. The tables have their own modules (settings,
starting_asset, timing); the result is the fields of a :class:`~tickloop.manifest.Manifest`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tickloop.errors import InputError, Problem
from tickloop.files import parse_toml, read_text
from tickloop.manifest.problems import Collector, got, show, unknown_key_reason
from tickloop.manifest.settings import parse_settings
from tickloop.manifest.starting_asset import parse_starting_asset
from tickloop.manifest.timing import parse_interval, parse_schedule
from tickloop.manifest.vocabulary import (
    DEPLOYMENT_REGIONS,
    EXECUTION_MODES,
    EXTRA_KEYS,
    MANIFEST_NAME,
    NAME_MAX,
    TAGLINE_MAX,
    TOP_LEVEL_KEYS,
    WALLET_TYPES,
)

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def path_is(test: Callable[[], bool]) -> bool:
    """``path.is_dir()`` and friends, False where the path cannot even be looked at (a name too
    long, a loop of links): reading it then reports why."""
    try:
        return test()
    except (OSError, ValueError):
        return False


def parse_path(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """The manifest fields of ``path`` (a ``circuit.toml`` or an agent folder holding one), or
    None with its problems added to ``problems``."""
    if path_is(path.is_dir):
        file = path / MANIFEST_NAME
        if not path_is(file.is_file):
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
    return parse_text(text, str(file), problems)


def parse_text(text: str, file: str, problems: list[Problem]) -> dict[str, Any] | None:
    """The manifest fields of ``circuit.toml`` text, or None with its problems added."""
    try:
        doc = parse_toml(text, file)
    except InputError as exc:
        problems.extend(exc.problems)
        return None
    before = len(problems)
    fields = _parse_document(doc, Collector(file, problems))
    return fields if len(problems) == before else None


def _parse_document(doc: dict[str, Any], out: Collector) -> dict[str, Any] | None:
    nested = _nested_top_level_keys(doc)

    def missing(key: str) -> None:
        if key not in nested:
            out.add(key, "required key is missing")

    name = _string(doc, "name", out, missing, max_len=NAME_MAX)
    tagline = _string(doc, "tagline", out, missing, max_len=TAGLINE_MAX)

    wallet_type = _string(doc, "walletType", out, missing)
    if wallet_type is not None and wallet_type not in WALLET_TYPES:
        out.add("walletType", f'must be "ethereum" or "solana", got {show(wallet_type)}')
        wallet_type = None

    modes = _execution_modes(doc, out, missing)

    schedule_value = doc.get("schedule", "rolling")
    is_cron = isinstance(schedule_value, dict)
    interval = parse_interval(doc, out, missing, optional=is_cron)

    version = _string(doc, "version", out, missing)
    if version is not None and not _SEMVER.fullmatch(version):
        out.add("version", f'must be a semantic version major.minor.patch (like "1.0.0"), got {show(version)}')

    schedule = parse_schedule(schedule_value, interval, out)

    extras: dict[str, Any] = {}
    for key in EXTRA_KEYS:
        if key in doc and _check_extra(key, doc[key], out):
            extras[key] = doc[key]

    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            out.add(key, unknown_key_reason(key, TOP_LEVEL_KEYS, top_level=True))

    starting_asset = parse_starting_asset(doc["startingAsset"], out) if "startingAsset" in doc else None
    # With no valid walletType, an address default may be either an Ethereum or a Solana address.
    settings = parse_settings(doc.get("settings", {}), wallet_type, out)

    if (name is None or tagline is None or wallet_type is None or modes is None or version is None
            or schedule is None or settings is None):
        return None
    return {"name": name, "tagline": tagline, "walletType": wallet_type, "allowedExecutionModes": modes,
            "runtimeIntervalMinutes": interval, "schedule": schedule, "version": version,
            "startingAsset": starting_asset, "settings": settings, "extras": extras, "file": out.file}


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


def _string(doc: Mapping[str, Any], key: str, out: Collector, missing: Callable[[str], None], *,
            max_len: int | None = None) -> str | None:
    if key not in doc:
        missing(key)
        return None
    value = doc[key]
    if not isinstance(value, str):
        out.add(key, f"must be a string, {got(value)}")
        return None
    if not value.strip():
        out.add(key, "must not be empty")
        return None
    if max_len is not None and len(value) > max_len:
        out.add(key, f"must be at most {max_len} characters, got {len(value)}")
        return None
    return value


def _execution_modes(doc: Mapping[str, Any], out: Collector, missing: Callable[[str], None]) -> tuple[str, ...] | None:
    key = "allowedExecutionModes"
    if key not in doc:
        missing(key)
        return None
    value = doc[key]
    allowed = '"auto", "manual"'
    if not isinstance(value, list):
        out.add(key, f'must be a list of modes, like ["auto", "manual"], {got(value)}')
        return None
    if not value:
        out.add(key, f"must list at least one mode: {allowed}")
        return None
    ok = True
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or item not in EXECUTION_MODES:
            out.add(key, f"unknown mode {show(item)}; allowed: {allowed}")
            ok = False
        elif item in seen:
            out.add(key, f"{show(item)} is listed twice")
            ok = False
        else:
            seen.add(item)
    return tuple(value) if ok else None


def _check_extra(key: str, value: Any, out: Collector) -> bool:
    if key in ("filesToInclude", "filesToExclude"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            out.add(key, f"must be a list of paths (strings) relative to the agent folder, {got(value)}")
            return False
        return True
    if not isinstance(value, str):
        out.add(key, f"must be a string, {got(value)}")
        return False
    if key == "deploymentRegionOverride" and value not in DEPLOYMENT_REGIONS:
        out.add(key, f'must be "us-east-1" or "eu-central-1", got {show(value)}')
        return False
    return True
