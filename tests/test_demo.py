"""The demo, as a new user runs it."""

from __future__ import annotations

import subprocess
import sys


def test_demo_takes_a_session_through_its_whole_life(tmp_path):
    """demo starts, runs on schedule, pauses, resumes without catch-up, unwinds and cleans up."""
    proc = subprocess.run([sys.executable, "-m", "tickloop.cli", "demo", "--fast"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in out + proc.stderr
    assert out.count("succeeded") >= 8  # six scheduled runs, one after resume, the unwind
    assert "runs while paused: 0" in out
    assert "no catch-up" in out and "session memory 'runs' = 7" in out
    assert "is stopped; session memory 'runs' = None" in out
    for action in ("start", "pause", "resume", "unwind", "unwound"):
        assert f" {action} " in out
