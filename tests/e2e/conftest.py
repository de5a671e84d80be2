"""End-to-end helpers: a real ``tickloop serve`` process on a home folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


class Serve:
    """A ``tickloop serve`` subprocess; ``ready`` waits for its start-up line."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.proc = subprocess.Popen([sys.executable, "-m", "tickloop.cli", "--home", str(home), "serve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})

    def ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "Ctrl-C to stop" in line:
                return
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
        raise AssertionError("serve did not start in time")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


@pytest.fixture
def serve() -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(home: Path, env: dict[str, str] | None = None, *args: str) -> Serve:
        s = Serve(home, env, args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def paper(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``tickloop paper serve`` in its own process; its base URLs."""
    proc = subprocess.Popen([sys.executable, "-m", "tickloop.cli", "paper", "serve",
                             "--state", str(tmp_path / "paper")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
