"""A worker process of the ``process`` executor, started as its own program::

    python -m tickloop_executors.worker CONN_FD PARENT_FD

``CONN_FD`` is a socket to the runtime (messages in :mod:`tickloop_executors.messages`);
``PARENT_FD`` is the read end of a pipe the runtime holds open, so the worker ends when the
runtime dies, whatever the worker is doing. Being a program of its own, a worker never imports
the runtime's ``__main__`` (a script embedding tickloop needs no ``if __name__`` guard), starts
with the environment and sandbox :mod:`tickloop_executors.sandbox` gives it, and holds nothing of
the runtime: no configuration, no store, no keys. Agent code reaches the runtime only through the
run's channel, each call carrying the run's permit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from tickloop.channel import Call
from tickloop.results import Result


class PipeChannel:
    """The agent's end of a run's channel over the worker's connection to the runtime."""

    def __init__(self, worker: Worker, run_id: int, permit: str) -> None:
        self._worker = worker
        self._run_id = run_id
        self._permit = permit

    def call(self, call: Call) -> Any:
        return self._worker.ask(self._run_id, self._permit, call)


class Worker:
    """One connection to the runtime, shared by the main thread (jobs) and any thread of agent
    code (calls). Whichever thread waits first reads the connection and hands out what it reads
    (replies to the threads that asked, jobs to the main thread) until its own wait is over, then
    passes the reading on: a single-threaded agent's call costs no thread switch."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._jobs: list[Any] = []
        self._answers: dict[int, Any] = {}
        self._waiting: set[int] = set()
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._reading = False
        self._closed = False

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.conn.send_bytes(data)

    def ask(self, run_id: int, permit: str, call: Call) -> Any:
        call_id = next(self._ids)
        with self._state:
            self._waiting.add(call_id)
        try:
            self.send(("call", run_id, permit, call_id, call))
        except Exception as exc:  # an argument that cannot be sent: the agent's mistake
            with self._state:
                self._waiting.discard(call_id)
            return Result.fail(f"{call.describe()}: the arguments cannot be sent to the runtime: {exc}")
        self._wait(lambda: call_id in self._answers)
        with self._state:
            status, value = self._answers.pop(call_id, ("closed", None))
        if status == "attr":
            raise AttributeError(value)
        if status == "closed":
            return Result.fail(f"{call.describe()}: the runtime went away")
        return value

    def next_job(self) -> Any:
        """The next message for the main thread: ``("run", job)`` or ``("stop",)``."""
        self._wait(lambda: bool(self._jobs))
        with self._state:
            return self._jobs.pop(0)

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._state:
            while not ready():
                if not self._reading:
                    self._reading = True
                    break
                self._state.wait()
            else:
                return
        try:
            while True:
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    message = None
                with self._state:
                    self._hand_out(message)
                    if ready():
                        return
        finally:
            with self._state:
                self._reading = False
                self._state.notify_all()  # another waiter may take the reading over

    def _hand_out(self, message: Any) -> None:
        """Called with the state lock held."""
        if message is None:  # the runtime went away: every wait ends
            self._closed = True
            self._answers.update(dict.fromkeys(self._waiting, ("closed", None)))
            self._waiting.clear()
            self._jobs.append(("stop",))
        elif message[0] == "reply":
            if message[1] in self._waiting:
                self._waiting.discard(message[1])
                self._answers[message[1]] = (message[2], message[3])
        else:
            self._jobs.append(message)
        self._state.notify_all()


def serve(conn: Connection) -> None:
    """Execute jobs until told to stop."""
    from tickloop.agents import AgentLoader
    from tickloop.bootstrap import plugin_manager
    from tickloop.runner import AgentRunner
    from tickloop_executors import failure

    hello = conn.recv()
    options = hello[1]
    sys.path[:] = options["sys_path"]
    if options.get("cwd"):
        with contextlib.suppress(OSError):  # the folder is hidden by the sandbox or gone: stay where we are
            os.chdir(options["cwd"])
    worker = Worker(conn)
    try:
        pm = plugin_manager(block=options.get("block", ()), load=options.get("load", ()))
        runner, build_error = AgentRunner(hook=pm.hook, agents=AgentLoader()), None
    except Exception as exc:  # reported with every job, so the runtime says why runs fail
        runner, build_error = None, exc
    worker.send(("ready", os.getpid()))
    while True:
        message = worker.next_job()
        if message[0] != "run":
            return
        job = message[1]
        if runner is None:
            outcome = failure(job.run_id, build_error, prefix="the worker could not load its plugins: ")
        else:
            outcome = _execute(worker, runner, job)
        try:
            worker.send(("done", job.run_id, outcome))
        except OSError:
            return
        except Exception as exc:  # the outcome does not pickle (a plugin returned something odd)
            worker.send(("done", job.run_id, failure(job.run_id, exc, prefix="the run's outcome could not be sent: ")))


def _execute(worker: Worker, runner: Any, job: Any) -> Any:
    from tickloop_executors import failure

    def on_log(line: Any) -> None:
        with contextlib.suppress(Exception):  # the runtime is gone; the parent watcher ends this process
            worker.send(("log", job.run_id, line))

    try:
        return runner.run(job, PipeChannel(worker, job.run_id, job.permit), on_log)
    except BaseException as exc:
        return failure(job.run_id, exc, prefix="error while executing the run: ")


def _exit_with_parent(fd: int) -> None:
    """End this process when the runtime dies (its end of the pipe closes), even mid-run."""
    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=watch, name="tickloop-parent-watch", daemon=True).start()


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime decides when workers stop
    conn_fd, parent_fd = int(argv[1]), int(argv[2])
    _exit_with_parent(parent_fd)
    code = 0
    try:
        serve(Connection(conn_fd))
    except (EOFError, OSError):
        pass  # the runtime went away
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        # Never wait for threads an agent left running: exit now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
