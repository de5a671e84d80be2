"""The demo, as a new user runs it; it is a command of the paper plugin."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import tickloop


def test_demo_trades_on_the_paper_exchanges_through_a_whole_life(tmp_path):
    """demo: hl-trend trades in auto mode, pm-basket's buy is a suggestion approved with the CLI,
    pause/resume without catch-up, and unwinds that leave both sessions flat and stopped."""
    proc = subprocess.run([sys.executable, "-m", "tickloop.cli", "demo", "--fast"], capture_output=True, text=True,
                          check=False, timeout=180, cwd=tmp_path)
    out = re.sub(r"\s+", " ", proc.stdout)  # rich wraps long lines
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    for name in ("hyperliquid", "polymarket_clob", "polymarket_data"):
        assert re.search(rf"paper {name}: http://127\.0\.0\.1:\d+", out)
    # auto mode: the trend opens a position that the portfolio shows
    assert re.search(r"ETH trend up \(mid 3030[^)]*\): buy 0\.5, filled 0\.5 at 3030", out)
    assert "portfolio: ETH 0.5 @ 3,030.00" in out
    # manual mode: a suggestion, approved by the real CLI in another process
    assert re.search(r"Suggested buying \$20\.00 of .* \(suggestion 1\)", out)
    assert "$ tickloop suggestions approve 1 executed:" in out
    # units are named: a market buy's size is USD, what it bought and what the closer sells are shares
    assert re.search(r"order: polymarket market_order: buy 20\.00 USD of outcome token \d+…\d+", out)
    assert re.search(r"executed: bought (\d+) shares at 0\.\d{4} USD each, 20\.00 USD in all \(order 0x", out)
    assert re.search(r"portfolio: Yes \d+ shares @ 0\.\d\d USD", out)
    assert re.search(r"order: polymarket market_order: sell \d+ shares of outcome token \d+…\d+ \(FAK\)", out)
    assert re.search(r"executed: sold \d+ shares at 0\.\d{4} USD each", out)
    assert "..." not in out  # nothing is cut mid-value
    assert "three intervals later it has run 0 times" in out and "no catch-up run" in out
    # unwind: closers flatten both; Polymarket's closing sell is approved the same way
    assert "hyperliquid: ETH is flat for session 1" in out
    assert "session 1 is stopped: portfolio: flat" in out
    assert "$ tickloop suggestions approve 2 executed:" in out
    assert "session 2 is stopped: portfolio: flat" in out


def test_demo_is_a_paper_plugin_command(tmp_path):
    """demo --help works; a bad option is a usage error; blocking the paper plugin removes the demo."""
    home = tmp_path / "home"
    home.mkdir()
    assert "A guided tour on the paper exchanges" in tickloop(home, "demo", "--help", check=True).stdout
    bad = tickloop(home, "demo", "--runs", "many")
    assert bad.returncode == 2 and "--runs" in bad.stderr and "Traceback" not in bad.stderr
    (home / "tickloop.toml").write_text('[plugins]\nblock = ["paper"]\n')
    blocked = tickloop(home, "demo", "--help")
    assert blocked.returncode == 2 and "No such command 'demo'" in blocked.stderr
    assert "\n  demo " not in tickloop(home, "--help", check=True).stdout


def test_a_long_answer_keeps_whole_fields():
    """An answer the demo cannot summarise is cut between fields, never inside a value."""
    import json

    from tickloop_paper.demo import ANSWER_WIDTH, _answer_text

    result = {"success": True, "hash": "0x" + "ab" * 32, "status": "filled", "note": "x" * 200}
    text = _answer_text({"status": "executed", "result": result})
    assert text.startswith('{"success": true, "hash": "0x' + "ab" * 32 + '", "status": "filled"')
    assert text.endswith(", … 1 more field(s)}") and len(text) <= ANSWER_WIDTH + 30
    assert _answer_text({"status": "failed", "error": "venue said no"}) == "venue said no"
    assert _answer_text({"status": "executed", "result": [1, 2]}) == json.dumps([1, 2])
