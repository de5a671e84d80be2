"""The problems of one ``circuit.toml`` and how they are worded: values shown as TOML writes them,
"got <kind> <value>", and "did you mean" for unknown keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from tickloop.errors import Problem
from tickloop.manifest.vocabulary import LEGACY_KEYS, TOP_LEVEL_KEYS
from tickloop.ranges import show as show_scalar


class Collector:
    """Problems of one file, added by key path."""

    __slots__ = ("file", "problems")

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def add(self, key: str, reason: str) -> None:
        self.problems.append(Problem(self.file, key, reason))


def pitfall_reason(key: str) -> str:
    return (f"top-level key {key} must come before the first [table] header "
            "(TOML puts keys written after a [table] header into that table)")


def unknown_key_reason(key: str, known: tuple[str, ...], *, top_level: bool) -> str:
    if not top_level and key in TOP_LEVEL_KEYS:
        return pitfall_reason(key)
    if top_level and key in LEGACY_KEYS:
        return f"unknown key: {LEGACY_KEYS[key]}"
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {by_lower[close[0]]}?"
    return "unknown key; known keys: " + ", ".join(known)


def kind_of(value: Any) -> str:
    """The TOML name of ``value``'s type: boolean, integer, float, string, array, table, ..."""
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


def show(value: Any, limit: int = 60) -> str:
    """``value`` as it would be written in TOML (strings in double quotes), shortened."""
    if isinstance(value, (bool, str, float)):
        return show_scalar(value, limit)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k} = {show(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def got(value: Any) -> str:
    """"got <kind> <value>" for a message; strings show as themselves, in double quotes."""
    if value is None:
        return "got nothing"
    if isinstance(value, str):
        return f"got {show(value)}"
    return f"got {kind_of(value)} {show(value)}"
