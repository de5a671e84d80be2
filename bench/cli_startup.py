"""How long ``tickloop --help`` takes, as a user waits for it: a new process each time.

Runs each command ``--runs`` times (default 10) after one unmeasured warm-up run, and reports the
median, min and max wall time in milliseconds. In the same run it measures the interpreter
alone (``python -c pass``, the floor every Python CLI pays) and the import of the CLI module
(``python -c "import tickloop.cli"``), so the figure reads against a baseline taken on the same
machine at the same moment. Prints one JSON document::

    .venv/bin/python bench/cli_startup.py [--runs 10] [--target-ms 300]

The ``tickloop`` script is looked up next to the running interpreter (the venv's ``bin``), then
on ``PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_command(cmd: list[str], runs: int) -> dict[str, float]:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--target-ms", type=float, default=300.0, help="the target for tickloop --help (default 300)")
    args = parser.parse_args(argv)

    script = Path(sys.executable).with_name("tickloop")
    tickloop = str(script) if script.exists() else shutil.which("tickloop")
    if tickloop is None:
        parser.error("no tickloop script next to this interpreter or on PATH; install the project first")

    python_pass = time_command([sys.executable, "-c", "pass"], args.runs)
    help_ = time_command([tickloop, "--help"], args.runs)
    import_cli = time_command([sys.executable, "-c", "import tickloop.cli"], args.runs)
    median = help_["median_ms"]
    report = {
        "what": "wall time of a new process, median of --runs after one warm-up run",
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "tickloop_help": help_,
        "baseline_python_c_pass": python_pass,
        "import_tickloop_cli": import_cli,
        "help_vs_python_pass": round(median / python_pass["median_ms"], 2),
        "help_minus_python_pass_ms": round(median - python_pass["median_ms"], 1),
        "target_ms": args.target_ms,
        "within_target": median <= args.target_ms,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
