"""Session-change notification for a SQLite state store, over a UNIX datagram socket.

The owner binds ``<db>.sock`` (or an abstract socket named from a hash of the path when that
path is too long); every session change sends one datagram to it after commit. Nothing polls.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tickloop.errors import StoreLockedError

log = logging.getLogger(__name__)

#: Longest filesystem path used for the socket (``sun_path`` holds 108 bytes with the NUL).
MAX_SOCKET_PATH = 100


def _nothing() -> None:
    pass


def socket_address(db_path: Path) -> str:
    """Where the owner of ``db_path`` listens: ``<db>.sock``, or an abstract name on Linux (a
    path in the temp folder elsewhere) when that path does not fit in a socket address."""
    candidate = str(db_path.with_name(db_path.name + ".sock"))
    if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(os.fsencode(os.path.realpath(db_path))).hexdigest()[:32]
    if sys.platform.startswith("linux"):
        return f"\0tickloop-{digest}"
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"tickloop-{digest}.sock")


class DatagramNotifier:
    """Session-change notification over a UNIX datagram socket (see the module docstring)."""

    def __init__(self, db_path: Path) -> None:
        self.address = socket_address(db_path)
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._callback: Callable[[], None] = _nothing
        self._stopping = False
        self._closed = False
        self._lock = threading.Lock()

    def notify(self) -> None:
        try:
            sender = self._sender
            if sender is None:
                with self._lock:
                    if self._closed:
                        return
                    if self._sender is None:
                        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                        self._sender.setblocking(False)
                    sender = self._sender
            sender.sendto(b"s", self.address)
        except OSError:
            pass  # nobody listening (or its queue is full, so it is awake anyway): nothing to do

    def listen(self, callback: Callable[[], None]) -> None:
        """Start the listener thread; when it runs already, only the callback is replaced."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the state store is closed")
            self._callback = callback
            if self._thread is not None:
                return
            receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                self._bind(receiver)
            except BaseException:
                receiver.close()
                raise
            self._receiver = receiver
            self._stopping = False
            self._thread = threading.Thread(target=self._receive, args=(receiver,), name="tickloop-store-listener",
                                            daemon=True)
            self._thread.start()

    def _bind(self, receiver: socket.socket) -> None:
        try:
            receiver.bind(self.address)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            if self.address.startswith("\0"):  # abstract names vanish with their process: it is alive
                raise StoreLockedError(
                    f"another process listens for changes to this store ({self.address[1:]})") from None
        # A socket file is left over, from an owner that died or one that is alive: only a
        # live one receives, so a send that is refused means the file is stale.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.setblocking(False)
            probe.sendto(b"", self.address)
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        except OSError:
            raise StoreLockedError(f"another process listens on {self.address}") from None
        else:
            raise StoreLockedError(f"another process listens on {self.address}")
        finally:
            probe.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)
        receiver.bind(self.address)

    def _receive(self, receiver: socket.socket) -> None:
        while True:
            try:
                receiver.recv(64)
            except OSError:
                return
            if self._stopping:
                return
            try:
                self._callback()
            except Exception:  # a broken callback must not stop the notifications
                log.exception("state store change callback failed")

    def close(self) -> None:
        with self._lock:
            thread, receiver = self._thread, self._receiver
            self._thread = self._receiver = None
            self._stopping = self._closed = True
            if thread is not None and receiver is not None:  # set together by listen()
                # Wake the receiver thread (it sees _stopping); then it exits on its own.
                waker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    waker.setblocking(False)
                    waker.sendto(b"", receiver.getsockname() or self.address)
                except OSError:
                    pass
                finally:
                    waker.close()
                if thread is not threading.current_thread():  # close() may come from the callback
                    thread.join(timeout=5)
            if receiver is not None:
                receiver.close()
                if not self.address.startswith("\0"):
                    with contextlib.suppress(OSError):
                        os.unlink(self.address)
            if self._sender is not None:
                self._sender.close()
                self._sender = None
