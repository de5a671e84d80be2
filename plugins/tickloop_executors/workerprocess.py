"""A worker process of the ``process`` executor, seen from the runtime: started, greeted, stopped.

:func:`spawn` starts ``python -m tickloop_executors.worker`` (:mod:`tickloop_executors.worker`)
with the environment :mod:`tickloop_executors.sandbox` allows, in the sandbox when one is
configured, and sends it the hello; :meth:`WorkerProcess.wait_ready` waits for its answer.
:meth:`WorkerProcess.stop` ends it politely or not, and :func:`exit_code` names how it ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from tickloop.config import Config
from tickloop_executors import sandbox
from tickloop_executors.messages import MAX_MESSAGE, UntrustedMessage, loads

#: Seconds a new worker may take to start before it is killed.
STARTUP_TIMEOUT = 60.0
#: Seconds between SIGTERM and SIGKILL when a worker is killed.
KILL_GRACE = 1.0
#: Seconds an idle worker gets to exit by itself when the executor closes.
STOP_GRACE = 2.0


class WorkerProcess:
    """A worker process, the runtime's end of its connection and of its parent pipe."""

    __slots__ = ("conn", "parent_fd", "process")

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection, parent_fd: int) -> None:
        self.process = process
        self.conn = conn
        self.parent_fd = parent_fd

    def receive(self) -> Any:
        """The next message, read as untrusted (:class:`UntrustedMessage` for anything else)."""
        return loads(self.conn.recv_bytes(MAX_MESSAGE))

    def wait_ready(self, timeout: float) -> str | None:
        """Wait for the worker's ``ready``; what went wrong, or None. Raises ``EOFError`` or
        ``OSError`` when the worker exited before it was ready."""
        try:
            if not self.conn.poll(timeout):
                return f"worker process was not ready within {timeout:g} s"
            message = self.receive()
        except UntrustedMessage as exc:
            return str(exc)
        if message[0] != "ready":
            return f"worker process sent {message[0]!r} instead of 'ready'"
        return None

    def signal(self, *, terminate: bool) -> None:
        """SIGTERM (``terminate``) or SIGKILL; nothing when the process is gone already."""
        try:
            if terminate:
                self.process.terminate()
            else:
                self.process.kill()
        except (OSError, ValueError):
            pass  # already gone

    def stop(self, *, kill_grace: float, graceful: bool = False, ending: bool = False) -> int | None:
        """Stop the worker (ask it to exit when ``graceful``; give it a moment when it is
        ``ending`` by itself; else terminate, then kill) and close its ends; its exit code."""
        process = self.process
        if graceful:
            with contextlib.suppress(Exception):
                self.conn.send(("stop",))
            _wait(process, STOP_GRACE)
        elif ending:
            _wait(process, kill_grace)
        if process.poll() is None:
            self.signal(terminate=True)
            _wait(process, kill_grace)
        if process.poll() is None:
            self.signal(terminate=False)
            _wait(process, kill_grace + 5.0)
        self.conn.close()
        with contextlib.suppress(OSError):
            os.close(self.parent_fd)
        return process.poll()


def spawn(config: Config, sandbox_prefix: list[str], secret_names: Iterable[str]) -> WorkerProcess:
    """Start ``python -m tickloop_executors.worker`` (sandboxed when configured) and say hello."""
    ours, theirs = socket.socketpair()
    parent_r, parent_w = os.pipe()
    env = sandbox.worker_environ(os.environ, allow=config.runtime.worker_env, secret_names=secret_names)
    command = [*sandbox_prefix, sys.executable, "-m", "tickloop_executors.worker",
               str(theirs.fileno()), str(parent_r)]
    try:
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(), parent_r), env=env,
                                   start_new_session=not sandbox_prefix, stdin=subprocess.DEVNULL)
    except BaseException:
        ours.close()
        os.close(parent_w)
        raise
    finally:
        theirs.close()
        os.close(parent_r)
    os.set_inheritable(parent_w, False)
    worker = WorkerProcess(process, Connection(ours.detach()), parent_w)
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    worker.conn.send(("hello", {"sys_path": list(sys.path), "cwd": cwd,
                                "block": list(config.plugins.block), "load": list(config.plugins.load)}))
    return worker


def exit_code(code: int | None, sandboxed: list[str] | None = None) -> str:
    """An exit code for people; a signal is named (bubblewrap reports signal N as 128 + N)."""
    if code is None:
        return "unknown"
    number = -code if code < 0 else code - 128 if sandboxed and code > 128 else None
    if number is not None:
        try:
            return f"{code} ({signal.Signals(number).name})"
        except ValueError:
            pass
    return str(code)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
