"""Reading the files a user hands tickloop: circuit.toml, main.py (for ``check``), tickloop.toml.

Only regular files are read, at most :data:`MAX_INPUT_BYTES` of them: ``tickloop check
/dev/zero`` or a FIFO named as a config file is refused at once instead of reading forever or
blocking. TOML must be UTF-8 and nested at most :data:`MAX_NESTING` levels deep (tomllib
recurses once per level, so a hostile file would otherwise end in a ``RecursionError``). Every
refusal is an :class:`~tickloop.errors.InputError` with one problem naming the path and the
reason.
"""

from __future__ import annotations

import ast
import os
import re
import stat
import tomllib
from typing import Any

from tickloop.errors import InputError, Problem

#: The largest input file tickloop reads (1 MiB); real manifests and configs are a few KiB.
MAX_INPUT_BYTES = 1 << 20
#: The deepest nesting of arrays and tables a TOML input may have; real ones use 3 or 4.
MAX_NESTING = 32

_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+|end of document)\)$")
_TOML_KEY_TUPLE = re.compile(r"\((?:'[^']*'(?:, )?)+,?\)")


def read_bytes(path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Raises InputError for a missing or unreadable path, anything that is not a regular file
    (a folder, a device, a FIFO: opened without blocking) and a file larger than ``limit``.
    """
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputError(Problem(file, "", f"cannot read: {exc.strerror or exc}")) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise InputError(Problem(file, "", f"cannot read: {what}"))
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(Problem(file, "", f"cannot read: {exc.strerror or exc}")) from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputError(Problem(file, "", f"larger than {limit // 1024} KiB; tickloop reads input files up to"
                                           f" {limit // 1024} KiB"))
    return b"".join(chunks)


def read_text(path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a byte-order mark is dropped); InputError if it is
    not UTF-8."""
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(Problem(str(path), "", f"not UTF-8 text (invalid byte at offset {exc.start})")) from None


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """The TOML document ``text`` (from ``file``, for messages); InputError when it is not valid
    TOML or is nested deeper than :data:`MAX_NESTING` levels."""
    too_deep = InputError(Problem(file, "", f"nested more than {MAX_NESTING} levels deep (arrays and tables)"))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(Problem(file, "", toml_error_reason(str(exc), text))) from None
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputError(Problem(file, "", f"invalid TOML: {exc}")) from None
    if _depth_exceeds(doc, MAX_NESTING):
        raise too_deep
    return doc


def toml_error_reason(message: str, text: str) -> str:
    """tomllib's message as "invalid TOML at line L, column C: ...", without Python reprs."""
    where = ""
    match = _TOML_POSITION.search(message)
    if match:
        message = message[: match.start()]
        where = match.group(1)
        if where == "end of document":
            lines = text.split("\n")
            where = f"line {len(lines)}, column {len(lines[-1]) + 1} (end of file)"

    def dotted(m: re.Match[str]) -> str:
        try:
            parts = ast.literal_eval(m.group(0))
        except (ValueError, SyntaxError):
            return m.group(0)
        return "[" + ".".join(parts) + "]" if isinstance(parts, tuple) else m.group(0)

    message = _TOML_KEY_TUPLE.sub(dotted, message)
    message = message[:1].lower() + message[1:]
    return f"invalid TOML at {where}: {message}" if where else f"invalid TOML: {message}"


def _depth_exceeds(doc: dict[str, Any], limit: int) -> bool:
    """Whether tables and arrays nest more than ``limit`` deep (the document is level 1);
    iterative, as the point is to survive any depth."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False

