"""The trading commands of the CLI: wallets, suggestions, and what `sessions show` and
`sessions unwind` say about portfolios, shared margin and residue.

Every command runs as a real ``tickloop`` subprocess on a home without ``serve``. The venue is
the test venue ``sim_venue`` (``[plugins] load`` in the home's tickloop.toml, found through
PYTHONPATH); runs happen in this process (``make_runtime`` + ``tick``) on the same home, and the
venue's journal file shows what the subprocesses sent to it.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

import sim_venue
from helpers import tickloop
from tickloop.testing import T0

TESTS = Path(__file__).parent
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
CONFIG = '[plugins]\nload = ["sim_venue"]\n[runtime]\nexecutor = "inline"\n'
USDC = "0xA0b86991c6218b36c1d19d4a2e9eb0ce3606eB48"
USDC_ASSET = f"ethereum:1:{USDC}"
WALLET = "0x" + "cd" * 20
MIN = timedelta(minutes=1)
STARTING_ASSET = {"network": "ethereum:1", "address": USDC, "minimumAmount": "1000000000"}  # 1,000 USDC

# A manual-mode agent: one order without expiry, one that expires 30 minutes after T0.
SUGGESTER = """
def run(agent):
    r = agent.platforms.sim.place_order({"coin": "ETH", "side": "buy", "size": 2, "price": 3100,
                                         "type": "market"})
    agent.log(r.to_dict())
    agent.platforms.sim.place_order({"coin": "BTC", "side": "buy", "size": 1, "price": 51000, "type": "market",
                                     "expiresAt": "2026-01-05T12:30:00+00:00"})
"""

# An auto-mode agent that buys `size` of `coin` on its first run only, and logs what it unwinds.
BUYER = """
def run(agent):
    if agent.memory.get("bought").data.value:
        return
    for coin in agent.settings["coins"].split(","):
        r = agent.platforms.sim.place_order({"coin": coin, "side": "buy", "size": agent.settings["size"],
                                             "price": 1e9, "type": "market"})
        assert r.success, r.error
    agent.memory.set("bought", "yes")


def unwind(agent, portfolio):
    agent.log("unwinding " + ",".join(p.coin for p in portfolio.positions))
"""
BUYER_SETTINGS = {"coins": {"type": "text", "default": "BTC"}, "size": {"type": "number", "default": 1}}


def cli(home: Path, *args: str, env: dict[str, str] | None = None, check: bool = False):
    return tickloop(home, *args, env={**ENV, **(env or {})}, check=check)


def cli_json(home: Path, *args: str, env: dict[str, str] | None = None):
    return json.loads(cli(home, *args, "--json", env=env, check=True).stdout)


def assert_one_line_error(proc, *needles):
    """The command failed with exit 1 and a one-line message, never a traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture
def home(tickloop_home, tmp_path, monkeypatch):
    """A home whose runtimes load the sim venue; the venue journals to a file all processes share."""
    (tickloop_home / "tickloop.toml").write_text(CONFIG)
    monkeypatch.setenv("SIM_VENUE_JOURNAL", str(tmp_path / "journal.jsonl"))
    sim_venue.reset()
    yield tickloop_home
    sim_venue.reset()


def _home_bytes(home: Path) -> bytes:
    """Everything the state store wrote: the database and its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("state.db*")) if p.is_file())


def _assert_secret_absent(secret: bytes, home: Path, *texts: str) -> None:
    hexed = secret.hex()
    stored = _home_bytes(home)
    for form in (hexed, hexed.upper(), "0x" + hexed):
        assert form.encode() not in stored
        for text in texts:
            assert form.lower() not in text.lower()
    assert secret not in stored


# -- wallets ------------------------------------------------------------------------------------


def test_paper_wallet_is_added_and_listed_without_its_key(home):
    """wallets add --paper prints the address; neither the output nor state.db holds the key."""
    from tickloop.wallets import PAPER, Wallet

    added = cli(home, "wallets", "add", "--paper", "--label", "main", "--json", check=True)
    data = json.loads(added.stdout)
    address = data["address"]
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", address)
    assert (data["kind"], data["label"], data["key_source"]) == (
        "paper", "main", "paper key (encrypted keystore in the home)")
    plain = cli(home, "wallets", "add", "--paper", check=True)
    assert plain.stdout.startswith("added paper wallet 0x") and "funded on first use" in plain.stdout
    listed = cli_json(home, "wallets", "list")
    assert [w["label"] for w in listed] == ["main", ""]
    assert listed[0]["address"] == address and listed[0]["assets"] == [] and listed[0]["open_sessions"] == []
    table = cli(home, "wallets", "list", check=True)
    assert address in table.stdout and "paper key (encrypted keystore in the home)" in table.stdout

    # The key, read the way the runtime reads it to sign: encrypted under <home>/keys, nowhere else.
    account = Wallet(address=address, kind=PAPER, created_at=T0).account(home)
    assert account.address == address
    keyfile = (home / "keys" / f"{address}.json").read_text()
    assert account.key.hex().removeprefix("0x") not in keyfile.lower()
    _assert_secret_absent(bytes(account.key), home, added.stdout, added.stderr, plain.stdout, table.stdout,
                          json.dumps(listed))


def test_key_env_wallet_derives_its_address_and_stores_only_the_variable_name(home, monkeypatch):
    """--key-env VAR: the address comes from the key; only the name VAR is kept; a missing VAR is named."""
    from eth_account import Account

    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x")
    proc = cli(home, "wallets", "add", "--key-env", "MY_TRADING_KEY", "--json", env={"MY_TRADING_KEY": "0x" + key_hex})
    data = json.loads(proc.stdout)
    assert (data["address"], data["kind"], data["key_env"]) == (account.address, "env", "MY_TRADING_KEY")
    assert data["key_source"] == "environment variable MY_TRADING_KEY"
    listed = cli(home, "wallets", "list", check=True)
    assert account.address in listed.stdout and "environment variable MY_TRADING_KEY" in listed.stdout
    _assert_secret_absent(bytes(account.key), home, proc.stdout, proc.stderr, listed.stdout)

    monkeypatch.delenv("TICKLOOP_TEST_UNSET_KEY", raising=False)
    assert_one_line_error(cli(home, "wallets", "add", "--key-env", "TICKLOOP_TEST_UNSET_KEY"),
                          "--key-env TICKLOOP_TEST_UNSET_KEY: the environment variable is not set")
    assert_one_line_error(cli(home, "wallets", "add", "--key-env", "BAD_KEY", env={"BAD_KEY": "not-a-key"}),
                          "--key-env BAD_KEY: the variable does not hold a hex private key")
    again = cli(home, "wallets", "add", "--key-env", "SAME", env={"SAME": key_hex})
    assert_one_line_error(again, f"wallet {account.address} is already added")
    assert key_hex not in again.stderr


def test_keystore_wallet_with_a_password_variable(home, tmp_path):
    """--keystore FILE --password-env VAR checks the password now and keeps only the path and VAR's name."""
    from eth_account import Account

    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "s3cret", kdf="scrypt", iterations=2**10)))
    wrong = cli(home, "wallets", "add", "--keystore", str(keystore), "--password-env", "KS_PW", env={"KS_PW": "nope"})
    assert_one_line_error(wrong, f"--keystore {keystore}: $KS_PW does not decrypt this keystore")
    data = cli_json(home, "wallets", "add", "--keystore", str(keystore), "--password-env", "KS_PW", "--label", "cold",
                    env={"KS_PW": "s3cret"})
    assert (data["address"], data["kind"], data["keystore"], data["password_env"]) == (
        account.address, "keystore", str(keystore), "KS_PW")
    assert data["key_source"] == f"keystore {keystore} (password from $KS_PW)"
    _assert_secret_absent(bytes(account.key), home, json.dumps(data))
    assert b"s3cret" not in _home_bytes(home)
    assert_one_line_error(cli(home, "wallets", "add", "--keystore", str(tmp_path / "missing.json")),
                          "missing.json: cannot read")


@pytest.mark.parametrize(("args", "needle"), [
    ([], "give exactly one key source: --paper, --key-env VAR or --keystore FILE"),
    (["--paper", "--key-env", "X"], "(got --paper and --key-env)"),
    (["--paper", "--password-env", "X"], "--password-env goes with --keystore"),
])
def test_wallets_add_needs_exactly_one_key_source(home, args, needle):
    assert_one_line_error(cli(home, "wallets", "add", *args), needle)


def test_wallets_fund_and_what_open_sessions_hold(home, agent_folder):
    """fund credits a paper wallet; list shows funds, allocations of open sessions and what is free;
    real and unknown wallets are refused with the reason."""
    address = cli_json(home, "wallets", "add", "--paper")["address"]
    funded = cli_json(home, "wallets", "fund", address, "--asset", USDC_ASSET, "--amount", "1500000000")
    assert funded == {"address": address, "network": "ethereum:1", "asset": USDC.lower(), "added": "1500000000",
                      "balance": "1500000000"}
    text = cli(home, "wallets", "fund", address, "--asset", USDC_ASSET, "--amount", "500000000", check=True).stdout
    assert "now holds 2000000000 raw units = 2000 USDC" in text
    folder = agent_folder(BUYER, name="alloc", settings=BUYER_SETTINGS, startingAsset=STARTING_ASSET)
    started = cli_json(home, "sessions", "start", str(folder), "--wallet", address, "--allocation", "1200000000")
    assert started["allocation"] == "1200000000"
    [wallet] = cli_json(home, "wallets", "list")
    assert wallet["assets"] == [{"network": "ethereum:1", "asset": USDC.lower(), "symbol": "USDC", "decimals": 6,
                                 "funds": "2000000000", "allocated": "1200000000", "free": "800000000"}]
    assert wallet["open_sessions"] == [started["id"]]
    listed = cli(home, "wallets", "list", check=True).stdout
    assert "funds 2000000000 raw units = 2000 USDC  allocated 1200000000  free 800000000" in listed
    other = agent_folder(BUYER, name="alloc2", settings=BUYER_SETTINGS, startingAsset=STARTING_ASSET)
    assert_one_line_error(cli(home, "sessions", "start", str(other), "--wallet", address),  # the minimum: 1,000
                          "allocation 1000000000 exceeds the free balance", "800000000 of 2000000000")

    from eth_account import Account

    real = Account.create()
    cli(home, "wallets", "add", "--key-env", "REAL_KEY", env={"REAL_KEY": real.key.hex()}, check=True)
    assert_one_line_error(cli(home, "wallets", "fund", real.address, "--asset", USDC_ASSET, "--amount", "1"),
                          f"wallet {real.address} is a real wallet (environment variable REAL_KEY); only paper"
                          " wallets can be funded")
    assert_one_line_error(cli(home, "wallets", "fund", WALLET, "--asset", USDC_ASSET, "--amount", "1"),
                          f"wallet {WALLET} has not been added")
    assert_one_line_error(cli(home, "wallets", "fund", address, "--asset", USDC, "--amount", "1"),
                          "expected NETWORK:TOKENADDRESS")
    assert_one_line_error(cli(home, "wallets", "fund", address, "--asset", USDC_ASSET, "--amount", "1.5"),
                          "must be a whole number of raw units")


# -- suggestions --------------------------------------------------------------------------------


def test_manual_suggestions_are_listed_shown_approved_once_and_refused(home, agent_folder, make_runtime):
    """A manual session's actions wait as suggestions; the CLI approves one exactly once (the venue
    sees one order) and refuses expired, executed, rejected, deleted and unknown ones with the reason."""
    folder = agent_folder(SUGGESTER, name="suggester", allowedExecutionModes=["manual"])
    rt = make_runtime()
    s = rt.start_session(str(folder), WALLET, mode="manual", now=T0)
    [run] = rt.tick(T0)
    answer = json.loads(run.logs[0].message)
    assert answer["success"] and answer["data"]["suggested"] is True
    eth = answer["data"]["suggestionId"]
    assert answer["data"]["details"] == {"venue": "sim", "method": "place_order", "kind": "order", "coin": "ETH",
                                         "side": "buy", "size": 2, "price": 3100, "type": "market"}
    assert sim_venue.journal() == []  # manual mode sent nothing to the venue

    everything = cli_json(home, "suggestions", "list", "--session", str(s.id))
    btc = next(x["id"] for x in everything if x["action"]["params"]["coin"] == "BTC")
    assert [x["id"] for x in everything] == [btc, eth]  # newest first
    # The clock of the CLI is the real one, long past the BTC suggestion's expiresAt (T0 + 30 min).
    assert [x["id"] for x in cli_json(home, "suggestions", "list", "--status", "pending")] == [eth]
    assert [x["id"] for x in cli_json(home, "suggestions", "list", "--status", "expired")] == [btc]
    table = cli(home, "suggestions", "list", env={"COLUMNS": "200"}, check=True).stdout
    assert "sim place_order coin=BTC" in table and "pending" in table and "expired" in table
    assert "sim place_order coin=ETH side=buy size=2 price=3100 type=market" in table
    shown = cli_json(home, "suggestions", "show", str(eth))
    assert (shown["status"], shown["session_id"], shown["action"]["params"]["coin"]) == ("pending", s.id, "ETH")
    assert "sim place_order coin=ETH side=buy size=2" in cli(home, "suggestions", "show", str(eth), check=True).stdout

    assert_one_line_error(cli(home, "suggestions", "approve", str(btc)),
                          f"cannot approve suggestion {btc}: it expired at 2026-01-05T12:30:00+00:00")
    approved = cli_json(home, "suggestions", "approve", str(eth))
    assert (approved["status"], approved["result"]["status"], approved["result"]["coin"]) == ("executed", "filled",
                                                                                              "ETH")
    assert [(e["method"], e["params"]["coin"]) for e in sim_venue.journal()] == [("place_order", "ETH")]
    again = cli(home, "suggestions", "approve", str(eth))
    assert_one_line_error(again, f"cannot approve suggestion {eth}: it was already executed at")
    assert_one_line_error(cli(home, "suggestions", "reject", str(eth)),
                          f"cannot reject suggestion {eth}: it was already executed")
    assert len(sim_venue.journal()) == 1  # executed exactly once
    assert_one_line_error(cli(home, "suggestions", "approve", "999"), "suggestion 999 does not exist")

    # The next run: a new pair. Reject one, then approving it is refused.
    rt.tick(T0 + 15 * MIN)
    pending = cli_json(home, "suggestions", "list", "--session", str(s.id), "--status", "pending")
    [eth2] = [x["id"] for x in pending]
    rejected = cli_json(home, "suggestions", "reject", str(eth2))
    assert rejected["status"] == "rejected"
    assert_one_line_error(cli(home, "suggestions", "approve", str(eth2)),
                          f"cannot approve suggestion {eth2}: it was rejected at")
    # The run after soft-deletes what is still pending (here the second, expired BTC suggestion).
    [btc2] = [x["id"] for x in cli_json(home, "suggestions", "list", "--session", str(s.id), "--status", "expired")
              if x["id"] != btc]
    rt.tick(T0 + 30 * MIN)
    assert cli_json(home, "suggestions", "show", str(btc2))["status"] == "deleted"
    assert_one_line_error(cli(home, "suggestions", "approve", str(btc2)),
                          f"cannot approve suggestion {btc2}: it was deleted at", "a new run of session")
    text = cli(home, "suggestions", "approve", str(eth2 + 2))  # the third run's ETH suggestion
    assert text.returncode == 0 and f"suggestion {eth2 + 2} executed" in text.stdout
    assert '"status": "filled"' in text.stdout
    assert len(sim_venue.journal()) == 2


def test_approving_an_order_the_venue_refuses_prints_failed_and_exits_1(home, agent_folder, make_runtime):
    """A suggestion the venue cannot execute becomes failed, with the venue's error."""
    folder = agent_folder(SUGGESTER.replace('"ETH"', '"DOGE"'), name="doge", allowedExecutionModes=["manual"])
    rt = make_runtime()
    rt.start_session(str(folder), WALLET, mode="manual", now=T0)
    rt.tick(T0)
    [doge] = [x["id"] for x in cli_json(home, "suggestions", "list", "--status", "pending")]
    proc = cli(home, "suggestions", "approve", str(doge))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"suggestion {doge} failed" in proc.stdout and "unknown coin DOGE" in proc.stdout
    assert_one_line_error(cli(home, "suggestions", "approve", str(doge)), "its execution failed",
                          "unknown coin DOGE")


# -- sessions show, unwind ----------------------------------------------------------------------


def test_sessions_show_the_portfolio_and_warn_of_shared_liquidation_risk(home, agent_folder, make_runtime):
    """Two agents on one wallet with large perps: show prints the portfolio, the allocation and a
    warning naming both sessions; a stopped session's positions are shown as residue."""
    address = cli_json(home, "wallets", "add", "--paper")["address"]
    big_btc = agent_folder(BUYER, name="btc-bull", settings=BUYER_SETTINGS, startingAsset=STARTING_ASSET)
    big_eth = agent_folder(BUYER, name="eth-bull", settings=BUYER_SETTINGS, startingAsset=STARTING_ASSET)
    alone = agent_folder(BUYER, name="alone", settings=BUYER_SETTINGS, startingAsset=STARTING_ASSET)
    rt = make_runtime()
    a = rt.start_session(str(big_btc), address, now=T0)
    b = rt.start_session(str(big_eth), address, settings={"coins": "ETH", "size": 10}, now=T0)
    other = rt.add_wallet(paper=True, now=T0)
    c = rt.start_session(str(alone), other, settings={"size": 0.001}, now=T0)
    rt.tick(T0)

    shown = cli_json(home, "sessions", "show", str(a.id))
    assert [(p["coin"], p["size"], p["venue"]) for p in shown["portfolio"]["positions"]] == [("BTC", "1", "sim")]
    cash = {bal["network"]: bal for bal in shown["portfolio"]["balances"]}
    assert cash["ethereum:1"]["amountRaw"] == "1000000000"  # the allocation, 1,000 USDC (the minimum)
    assert shown["allocation"] == {"amount": "1000000000", "network": "ethereum:1", "asset": USDC.lower(),
                                   "symbol": "USDC", "decimals": 6}
    assert shown["pending_suggestions"] == 0 and shown["left_open"] == []
    margin = shown["margin"]
    assert margin["warning"] is True and margin["sessions"] == [a.id, b.id]
    assert float(margin["ratio"]) > 0.8  # 80,000 USD of notional on about 2,000 USD of collateral
    text = cli(home, "sessions", "show", str(b.id), check=True).stdout
    assert "shared liquidation risk" in text and f"sessions {a.id}, {b.id}" in text
    assert "1000000000 raw units = 1000 USDC" in text
    assert "ETH" in text and "positions" in text and "left open" not in text

    # Another wallet's lone session: no warning. A high threshold silences the warning.
    lone = cli_json(home, "sessions", "show", str(c.id))
    assert lone["margin"]["warning"] is False and lone["margin"]["sessions"] == [c.id]
    assert "shared liquidation risk" not in cli(home, "sessions", "show", str(c.id), check=True).stdout
    calm = cli(home, "sessions", "show", str(a.id), env={"TICKLOOP_WALLETS__MARGIN_WARNING": "1000"}, check=True)
    assert "shared liquidation risk" not in calm.stdout

    # Stopping without unwinding leaves the position open: residue, and no more shared margin.
    assert "is stopped" in cli(home, "sessions", "stop", str(a.id), check=True).stdout
    stopped = cli_json(home, "sessions", "show", str(a.id))
    assert [p["coin"] for p in stopped["left_open"]] == ["BTC"] and stopped["margin"] is None
    assert "positions left open (residue)" in cli(home, "sessions", "show", str(a.id), check=True).stdout
    assert "shared liquidation risk" not in cli(home, "sessions", "show", str(b.id), check=True).stdout


def test_sessions_unwind_selected_assets(home, agent_folder, make_runtime):
    """--asset passes the selection to the agent's unwind and the closers; the rest stays open."""
    folder = agent_folder(BUYER, name="two-coins", settings=BUYER_SETTINGS)
    rt = make_runtime()
    s = rt.start_session(str(folder), WALLET, settings={"coins": "BTC,ETH"}, now=T0)
    rt.tick(T0)
    out = cli(home, "sessions", "unwind", str(s.id), "--asset", "ETH", check=True).stdout
    assert f"session {s.id} is stopped" in out
    last = rt.runs(s.id)[-1]
    assert (last.kind, last.status, last.logs[0].message) == ("unwind", "succeeded", "unwinding ETH")
    closes = [e["params"] for e in sim_venue.journal() if e["params"].get("reduceOnly")]
    assert [(p["coin"], p["side"]) for p in closes] == [("ETH", "sell")]
    shown = cli_json(home, "sessions", "show", str(s.id))
    assert [p["coin"] for p in shown["left_open"]] == ["BTC"]


def test_manual_unwind_waits_for_approval_of_the_closing_orders(home, agent_folder, make_runtime):
    """In manual mode the closers' orders are suggestions too: the session stays unwinding until
    they are approved through the CLI; then the closers check again and stop it."""
    folder = agent_folder(BUYER, name="manual-close", settings=BUYER_SETTINGS)
    rt = make_runtime()
    s = rt.start_session(str(folder), WALLET, mode="manual", now=T0)
    rt.tick(T0)
    [buy] = cli_json(home, "suggestions", "list", "--session", str(s.id))
    assert cli_json(home, "suggestions", "approve", str(buy["id"]))["status"] == "executed"
    assert [p["coin"] for p in cli_json(home, "sessions", "show", str(s.id))["portfolio"]["positions"]] == ["BTC"]

    out = cli(home, "sessions", "unwind", str(s.id), check=True).stdout
    assert f"session {s.id} is unwinding; closing waits for approval of 1 suggestion(s)" in out
    assert f"tickloop sessions stop {s.id}" in out
    shown = cli(home, "sessions", "show", str(s.id), check=True).stdout
    assert "the closers' orders wait for approval" in shown and "suggestions 1 pending" in shown
    [close] = cli_json(home, "suggestions", "list", "--session", str(s.id), "--status", "pending")
    assert (close["action"]["params"]["reduceOnly"], close["action"]["params"]["side"]) == (True, "sell")
    assert cli_json(home, "suggestions", "approve", str(close["id"]))["status"] == "executed"
    done = cli_json(home, "sessions", "show", str(s.id))
    assert done["session"]["state"] == "stopped" and done["portfolio"]["positions"] == []
