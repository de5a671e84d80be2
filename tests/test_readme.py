"""The README's Python example works as a user would run it: saved as a script, and piped to
``python -``. The default (process) executor's workers are their own program, so they never
import the user's ``__main__`` and the example needs no ``if __name__ == "__main__"`` guard."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [example] = [b for b in blocks if "Runtime.from_config" in b]
    return example


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_the_readme_example_runs_as_a_script_and_from_stdin(tmp_path: Path, how: str) -> None:
    shutil.copytree(ROOT / "agents" / "hello", tmp_path / "agents" / "hello")
    example = _example()
    if how == "script":
        (tmp_path / "example.py").write_text(example)
        proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    else:
        proc = subprocess.run([sys.executable, "-"], input=example, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout  # the example printed once: no worker re-ran it
    assert lines[0].startswith("succeeded [")
    assert lines[1] == "1"  # hello counts its runs in memory
