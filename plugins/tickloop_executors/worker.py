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

import itertools
import os
import queue
import signal
import sys
import threading
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
    """One connection to the runtime: a reader thread routes replies to the threads that asked
    and jobs to the main thread, so agent threads may call the runtime concurrently."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, list[Any]] = {}
        self._waiting_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def ask(self, run_id: int, permit: str, call: Call) -> Any:
        call_id = next(self._ids)
        slot: list[Any] = [threading.Event(), None]
        with self._waiting_lock:
            self._waiting[call_id] = slot
        try:
            self.send(("call", run_id, permit, call_id, call))
        except Exception as exc:  # an argument that cannot be sent: the agent's mistake
            with self._waiting_lock:
                self._waiting.pop(call_id, None)
            return Result.fail(f"{call.describe()}: the arguments cannot be sent to the runtime: {exc}")
        slot[0].wait()
        status, value = slot[1]
        if status == "attr":
            raise AttributeError(value)
        return value

    def read(self) -> None:
        """The reader thread: until the runtime goes away or says stop."""
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "reply":
                    with self._waiting_lock:
                        slot = self._waiting.pop(message[1], None)
                    if slot is not None:
                        slot[1] = (message[2], message[3])
                        slot[0].set()
                else:
                    self.jobs.put(message)
        except (EOFError, OSError):
            pass
        self.jobs.put(("stop",))


def serve(conn: Connection) -> None:
    """Execute jobs until told to stop."""
    from tickloop.agents import AgentLoader
    from tickloop.execution import AgentRunner
    from tickloop.plugins import make_plugin_manager
    from tickloop_executors import failure

    hello = conn.recv()
    options = hello[1]
    sys.path[:] = options["sys_path"]
    if options.get("cwd"):
        try:
            os.chdir(options["cwd"])
        except OSError:
            pass  # the folder is hidden by the sandbox or gone: stay where we are
    worker = Worker(conn)
    try:
        pm = make_plugin_manager(block=options.get("block", ()), load=options.get("load", ()))
        runner, build_error = AgentRunner(hook=pm.hook, agents=AgentLoader()), None
    except Exception as exc:  # reported with every job, so the runtime says why runs fail
        runner, build_error = None, exc
    worker.send(("ready", os.getpid()))
    threading.Thread(target=worker.read, name="tickloop-worker-reader", daemon=True).start()
    while True:
        message = worker.jobs.get()
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
        try:
            worker.send(("log", job.run_id, line))
        except Exception:
            pass  # the runtime is gone; the parent watcher ends this process

    try:
        return runner.run(job, PipeChannel(worker, job.run_id, job.permit), on_log)
    except BaseException as exc:  # noqa: BLE001 - a worker outlives anything a run raises
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
    except BaseException:  # noqa: BLE001 - reported, then the exit below
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
