"""What a worker process may see: its environment variables and, on Linux, its file system.

**Environment.** A worker gets an allow-list of the runtime's environment variables (the ones a
Python program needs to run: ``PATH``, ``HOME``, locale, proxies, certificates, Python's own,
tickloop's plugin switches) plus the names or patterns in ``[runtime] worker_env``. Whatever
is allowed, a variable is never passed when it is named by a wallet as its key or keystore
password, is a tickloop secret (``TICKLOOP_KEYSTORE_PASSWORD``, the API token), or holds what
looks like a private key (32 bytes of hex).

**File system** (``[runtime] sandbox``). With bubblewrap (``bwrap``, a Debian/Ubuntu/Fedora
package) the worker runs in its own user, mount and PID namespaces with no capabilities: the
tickloop home (state database, key store and its secret, memory, paper exchanges) is covered by
an empty read-only folder, ``/proc`` shows only the sandbox's own processes, and the rest of the
file system and the network are as usual. ``auto`` (the default) uses bubblewrap when it is
installed and says so when it is not; ``bwrap`` requires it; ``none`` runs workers unsandboxed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from tickloop.errors import ConfigError, Problem

#: Variables a worker gets (exact names, or a trailing * for a prefix).
ALLOWED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TZDIR", "TMPDIR", "TEMP", "TMP",
    "TERM", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "PYTHONFAULTHANDLER", "PYTHONDEVMODE", "PYTHONNOUSERSITE", "PYTHONSAFEPATH", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "COVERAGE_PROCESS_START", "COV_CORE_*",
    "TICKLOOP_DISABLE_PLUGIN_AUTOLOAD", "TICKLOOP_PLUGINS", "TICKLOOP_TRACE_PLUGINS",
)
#: tickloop's own secrets, never passed.
SECRETS = frozenset({"TICKLOOP_KEYSTORE_PASSWORD", "TICKLOOP_API_TOKEN", "TICKLOOP_API__TOKEN"})
_HEX_KEY = re.compile(r"\s*(0x)?[0-9a-fA-F]{64}\s*")

SANDBOXES = ("auto", "bwrap", "none")


def worker_environ(environ: Mapping[str, str], *, allow: Iterable[str] = (),
                   secret_names: Iterable[str] = ()) -> dict[str, str]:
    """The variables of ``environ`` a worker gets (see the module docstring)."""
    patterns = [*ALLOWED, *allow]
    never = SECRETS | set(secret_names)
    passed = {}
    for name, value in environ.items():
        if name in never or _HEX_KEY.fullmatch(value):
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            passed[name] = value
    return passed


def bwrap_path() -> str | None:
    """bubblewrap's executable, when installed (Linux only)."""
    return shutil.which("bwrap") if sys.platform.startswith("linux") else None


def sandbox_prefix(mode: str, home: Path, *, source: str = "configuration") -> list[str]:
    """The command that wraps a worker for ``[runtime] sandbox = mode`` (empty: none).

    Raises :class:`ConfigError` when ``bwrap`` is required but missing, or when the home holds
    the Python installation workers run (covering the home would hide it).
    """
    if mode == "none":
        return []
    bwrap = bwrap_path()
    if bwrap is None:
        if mode == "bwrap":
            raise ConfigError(Problem(source, "runtime.sandbox",
                                      "'bwrap' needs bubblewrap (apt-get install bubblewrap), which is not installed"))
        return []
    hidden = Path(os.path.realpath(home))
    for path in {sys.prefix, sys.base_prefix, sys.executable}:
        if Path(os.path.realpath(path)).is_relative_to(hidden):
            raise ConfigError(Problem(source, "runtime.sandbox",
                                      f"the home {hidden} contains the Python installation ({path}), which workers"
                                      " could not see in the sandbox; move the home or set runtime.sandbox = 'none'"))
    return [bwrap, "--dev-bind", "/", "/", "--tmpfs", str(hidden), "--remount-ro", str(hidden), "--proc", "/proc",
            "--unshare-user", "--unshare-pid", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--"]


def describe(prefix: list[str], home: Path) -> str:
    """One line for people: how agents are isolated."""
    if prefix:
        return f"agents run sandboxed (bubblewrap): they cannot see {home} and get a scrubbed environment"
    return ("agents get a scrubbed environment but are not sandboxed: they can read what your user can,"
            " including the home (install bubblewrap, or set runtime.sandbox)")
