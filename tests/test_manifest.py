"""circuit.toml: parsing, every problem it can report, settings resolution, and agent folders."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from tickloop import schedule as schedule_module
from tickloop.context import AgentContext
from tickloop.errors import ManifestError, Problem, SettingsError
from tickloop.manifest import Manifest, Setting, StartingAsset, check_agent_folder
from tickloop.memory import Memory
from tickloop.portfolio import Portfolio
from tickloop.schedule import Schedule
from tickloop_memory import InProcessMemory

AGENTS = Path(__file__).resolve().parents[1] / "agents"

BASE = """\
name = "demo"
tagline = "A demo agent"
walletType = "ethereum"
allowedExecutionModes = ["auto", "manual"]
runtimeIntervalMinutes = 15
version = "1.2.3"
"""

ETH_ADDRESS = "0x" + "ab" * 20
INTERVAL = "must be a number of minutes from 0.0001 to 525600"
SOL_ADDRESS = "So11111111111111111111111111111111111111112"


def toml(*, drop: tuple[str, ...] = (), tables: str = "", **top: str) -> str:
    """BASE with some top-level lines replaced (``key="raw TOML value"``) or dropped, then tables."""
    lines = []
    for line in BASE.splitlines():
        key = line.split("=")[0].strip()
        if key in drop:
            continue
        lines.append(f"{key} = {top.pop(key)}" if key in top else line)
    lines += [f"{key} = {value}" for key, value in top.items()]
    return "\n".join(lines) + "\n" + tables


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        Manifest.from_toml(text)
    return info.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def reasons(problems: list[Problem]) -> dict[str, str]:
    return {p.key: p.reason for p in problems}


# -- valid manifests -------------------------------------------------------------------------


def test_hello_agent_parses() -> None:
    """The hello example agent's circuit.toml is valid and reads as written."""
    m = Manifest.from_file(AGENTS / "hello")
    assert m.name == "hello"
    assert m.walletType == "ethereum"
    assert m.allowedExecutionModes == ("auto", "manual")
    assert m.default_mode == "auto"
    assert m.runtimeIntervalMinutes == 1
    assert m.schedule == Schedule.rolling(1)
    assert list(m.settings) == ["greeting", "loud"]
    assert m.settings["greeting"] == Setting("greeting", "text", m.settings["greeting"].description, False, "Hello",
                                             None)
    assert m.settings["loud"].type == "boolean" and m.settings["loud"].default is False
    assert m.startingAsset is None
    assert m.file == str(AGENTS / "hello" / "circuit.toml")


def test_dca_agent_parses_with_all_seven_setting_types() -> None:
    """The DCA example declares every setting type, a fixed schedule and a USDC starting asset."""
    m = Manifest.from_file(AGENTS / "dca" / "circuit.toml")
    assert m.name == "dca"
    assert m.schedule == Schedule.fixed(60)
    assert m.startingAsset == StartingAsset("ethereum:1", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "100000000")
    assert m.startingAsset.minimum_amount == 100_000_000
    assert {s.type for s in m.settings.values()} == {
        "text", "boolean", "single_select", "integer", "number", "percentage", "address"}
    assert m.settings["token"].options == ("ETH", "WBTC", "LINK", "UNI")
    assert m.settings["treasury"].default is None
    assert m.extras == {"imageUrl": "https://cdn.circuit.org/agents/default", "category": "quant"}


def test_schedule_defaults_to_rolling() -> None:
    """Without a schedule key the manifest is on a rolling schedule of runtimeIntervalMinutes."""
    m = Manifest.from_toml(BASE)
    assert m.schedule == Schedule.rolling(15)
    assert m.settings == {} and m.extras == {} and m.file == "circuit.toml"


def test_fixed_schedule_and_fractional_minutes() -> None:
    """schedule = "fixed" is kept, and a fractional interval is allowed."""
    m = Manifest.from_toml(toml(schedule='"fixed"', runtimeIntervalMinutes="0.5"))
    assert m.runtimeIntervalMinutes == 0.5
    assert m.schedule == Schedule.fixed(0.5)
    assert m.schedule.interval == timedelta(seconds=30)


def test_cron_table_without_interval() -> None:
    """A cron schedule table needs no runtimeIntervalMinutes and keeps its time zone."""
    m = Manifest.from_toml(toml(drop=("runtimeIntervalMinutes",),
                                schedule='{cron = "0 9 * * 1-5", timezone = "Europe/Berlin"}'))
    assert m.runtimeIntervalMinutes is None
    assert m.schedule == Schedule.from_cron("0 9 * * 1-5", "Europe/Berlin")


def test_cron_table_timezone_defaults_to_utc() -> None:
    """A cron table without timezone runs in UTC; a [schedule] header works like the inline table."""
    m = Manifest.from_toml(BASE + '[schedule]\ncron = "*/5 * * * *"\n')
    assert m.schedule == Schedule.from_cron("*/5 * * * *", "UTC")
    assert m.runtimeIntervalMinutes == 15


def test_single_execution_mode_sets_default_mode() -> None:
    """The first allowed execution mode is the default one."""
    assert Manifest.from_toml(toml(allowedExecutionModes='["manual", "auto"]')).default_mode == "manual"


def test_all_optional_keys_are_kept_as_extras() -> None:
    """imageUrl, category, deploymentRegionOverride, filesToInclude and filesToExclude go to extras."""
    m = Manifest.from_toml(toml(imageUrl='"https://x/y.png"', category='"quant"',
                                deploymentRegionOverride='"eu-central-1"',
                                filesToInclude='["../shared"]', filesToExclude='["notes.txt"]'))
    assert m.extras == {"imageUrl": "https://x/y.png", "category": "quant", "deploymentRegionOverride": "eu-central-1",
                        "filesToInclude": ["../shared"], "filesToExclude": ["notes.txt"]}


def test_settings_keep_declaration_order_and_defaults() -> None:
    """Settings of every type parse with their defaults, in the order they are declared."""
    m = Manifest.from_toml(BASE + f"""
[settings.z_text]
type = "text"
description = "t"
default = "hi"
[settings.a_bool]
type = "boolean"
default = true
[settings.m_select]
type = "single_select"
options = ["a", "b"]
default = "b"
[settings.int]
type = "integer"
default = -3
[settings.num]
type = "number"
default = 2
[settings.pct]
type = "percentage"
default = 100
[settings.addr]
type = "address"
required = true
default = "{ETH_ADDRESS}"
[settings.optional]
type = "number"
""")
    assert list(m.settings) == ["z_text", "a_bool", "m_select", "int", "num", "pct", "addr", "optional"]
    assert [s.default for s in m.settings.values()] == ["hi", True, "b", -3, 2, 100, ETH_ADDRESS, None]
    assert m.settings["addr"].required is True and m.settings["optional"].required is False
    assert m.settings["z_text"].description == "t" and m.settings["int"].description == ""


def test_solana_address_setting() -> None:
    """An address default on a solana agent must be base58, not 0x."""
    text = toml(walletType='"solana"', tables=f'[settings.a]\ntype = "address"\ndefault = "{SOL_ADDRESS}"\n')
    assert Manifest.from_toml(text).settings["a"].default == SOL_ADDRESS
    problem = only_problem(toml(walletType='"solana"',
                                tables=f'[settings.a]\ntype = "address"\ndefault = "{ETH_ADDRESS}"\n'))
    assert problem.key == "settings.a.default"
    assert problem.reason.startswith("must be a Solana address (32 to 44 base58 characters), as walletType is solana")


def test_value_objects_are_frozen() -> None:
    """Manifests and their parts cannot be changed after parsing."""
    m = Manifest.from_toml(BASE)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.name = "other"  # type: ignore[misc]


def test_setting_from_table() -> None:
    """Setting.from_table checks one declaration on its own."""
    s = Setting.from_table("n", {"type": "integer", "default": 4, "required": False})
    assert s == Setting("n", "integer", "", False, 4, None)
    with pytest.raises(ManifestError, match=r"circuit.toml: settings.n.default: must be an integer"):
        Setting.from_table("n", {"type": "integer", "default": 1.5})


# -- top-level problems ----------------------------------------------------------------------


@pytest.mark.parametrize(("change", "key", "reason"), [
    ({"drop": ("name",)}, "name", "required key is missing"),
    ({"name": '"' + "x" * 33 + '"'}, "name", "must be at most 32 characters, got 33"),
    ({"name": "7"}, "name", "must be a string, got integer 7"),
    ({"name": '""'}, "name", "must not be empty"),
    ({"tagline": '"' + "t" * 40 + '"'}, "tagline", "must be at most 32 characters, got 40"),
    ({"drop": ("tagline",)}, "tagline", "required key is missing"),
    ({"walletType": '"bitcoin"'}, "walletType", 'must be "ethereum" or "solana", got "bitcoin"'),
    ({"drop": ("walletType",)}, "walletType", "required key is missing"),
    ({"allowedExecutionModes": "[]"}, "allowedExecutionModes", 'must list at least one mode: "auto", "manual"'),
    ({"allowedExecutionModes": '"auto"'}, "allowedExecutionModes",
     'must be a list of modes, like ["auto", "manual"], got "auto"'),
    ({"allowedExecutionModes": '["auto", "hybrid"]'}, "allowedExecutionModes",
     'unknown mode "hybrid"; allowed: "auto", "manual"'),
    ({"allowedExecutionModes": '["manual", "manual"]'}, "allowedExecutionModes", '"manual" is listed twice'),
    ({"runtimeIntervalMinutes": "0"}, "runtimeIntervalMinutes", f"{INTERVAL}, got 0"),
    ({"runtimeIntervalMinutes": "-1.5"}, "runtimeIntervalMinutes", f"{INTERVAL}, got -1.5"),
    ({"runtimeIntervalMinutes": "inf"}, "runtimeIntervalMinutes", f"{INTERVAL}, got inf"),
    ({"runtimeIntervalMinutes": "nan"}, "runtimeIntervalMinutes", f"{INTERVAL}, got nan"),
    # Accepted before, then crashed serve at the first completion (date value out of range).
    ({"runtimeIntervalMinutes": "1e12"}, "runtimeIntervalMinutes", f"{INTERVAL}, got 1000000000000.0"),
    ({"runtimeIntervalMinutes": "1e300"}, "runtimeIntervalMinutes", f"{INTERVAL}, got 1e+300"),
    ({"runtimeIntervalMinutes": str(2**63 - 1)}, "runtimeIntervalMinutes", f"{INTERVAL}, got {2**63 - 1}"),
    ({"runtimeIntervalMinutes": "525601"}, "runtimeIntervalMinutes", f"{INTERVAL}, got 525601"),
    ({"runtimeIntervalMinutes": "0.00001"}, "runtimeIntervalMinutes", f"{INTERVAL}, got 1e-05"),
    ({"runtimeIntervalMinutes": "true"}, "runtimeIntervalMinutes", f"{INTERVAL}, got true"),
    ({"runtimeIntervalMinutes": '"15"'}, "runtimeIntervalMinutes", f'{INTERVAL}, got "15"'),
    ({"drop": ("runtimeIntervalMinutes",)}, "runtimeIntervalMinutes", "required key is missing"),
    ({"version": '"1.0"'}, "version", 'must be a semantic version major.minor.patch (like "1.0.0"), got "1.0"'),
    ({"version": '"v1.0.0"'}, "version", 'must be a semantic version major.minor.patch (like "1.0.0"), got "v1.0.0"'),
    ({"version": "1"}, "version", "must be a string, got integer 1"),
    ({"schedule": '"hourly"'}, "schedule",
     'must be "rolling", "fixed" or a table {cron = "...", timezone = "..."}, got "hourly"'),
    ({"schedule": "5"}, "schedule",
     'must be "rolling", "fixed" or a table {cron = "...", timezone = "..."}, got integer 5'),
    ({"deploymentRegionOverride": '"mars-1"'}, "deploymentRegionOverride",
     'must be "us-east-1" or "eu-central-1", got "mars-1"'),
    ({"imageUrl": "1"}, "imageUrl", "must be a string, got integer 1"),
    ({"filesToInclude": '"lib"'}, "filesToInclude",
     'must be a list of paths (strings) relative to the agent folder, got "lib"'),
])
def test_top_level_problem(change: dict[str, Any], key: str, reason: str) -> None:
    """Each bad top-level value is reported at its key with a reason naming what is expected."""
    problem = only_problem(toml(**change))
    assert (problem.file, problem.key, problem.reason) == ("circuit.toml", key, reason)


def test_prerelease_versions_are_semver() -> None:
    """A semantic version may carry a pre-release or build suffix."""
    assert Manifest.from_toml(toml(version='"2.0.0-rc.1+build.5"')).version == "2.0.0-rc.1+build.5"


@pytest.mark.parametrize(("value", "key", "reason"), [
    ('{cron = "61 * * * *"}', "schedule.cron", 'not a valid cron expression: "61 * * * *"'),
    ('{cron = 5}', "schedule.cron", "must be a string, got integer 5"),
    ('{timezone = "UTC"}', "schedule.cron", "required key is missing"),
    ('{cron = "0 * * * *", timezone = "Mars/Base"}', "schedule.timezone", 'unknown time zone "Mars/Base"'),
    ('{cron = "0 * * * *", timezone = "Europe/Berln"}', "schedule.timezone", 'did you mean "Europe/Berlin"?'),
    ('{cron = "0 * * * *", tz = "UTC"}', "schedule.tz", "unknown key; known keys: cron, timezone"),
])
def test_cron_schedule_problem(value: str, key: str, reason: str) -> None:
    """A bad cron table is reported at schedule.<key>."""
    problem = only_problem(toml(drop=("runtimeIntervalMinutes",), schedule=value))
    assert problem.key == key
    assert reason in problem.reason


def test_schedule_validator_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """tickloop.schedule.validate, when present, can refuse a schedule the manifest reader accepts."""
    seen: list[Schedule] = []

    def validate(schedule: Schedule) -> str | None:
        seen.append(schedule)
        return "fixed intervals must divide a day" if schedule.kind == "fixed" else None

    monkeypatch.setattr(schedule_module, "validate", validate, raising=False)
    assert Manifest.from_toml(BASE).schedule == Schedule.rolling(15)
    problem = only_problem(toml(schedule='"fixed"', runtimeIntervalMinutes="7"))
    assert (problem.key, problem.reason) == ("schedule", "fixed intervals must divide a day")
    assert seen == [Schedule.rolling(15), Schedule.fixed(7)]


def test_unknown_top_level_keys() -> None:
    """Unknown keys are problems, with a "did you mean" when one is close, or the old key's successor."""
    problems = problems_of(toml(tagLine='"x"', intervalMinutes="5", defaultSleepIntervalMinutes="5", zzz="1"))
    got = reasons(problems)
    assert got["tagLine"] == "unknown key; did you mean tagline?"
    assert got["defaultSleepIntervalMinutes"] == "unknown key: an old .circuit.toml key; use runtimeIntervalMinutes"
    assert got["zzz"].startswith("unknown key; known keys: name, tagline, walletType, allowedExecutionModes")
    assert "intervalMinutes" in got


def test_starting_asset_problems() -> None:
    """Every [startingAsset] key is required, minimumAmount is a digit string, and unknown keys are named."""
    got = reasons(problems_of(BASE + '[startingAsset]\nnetwork = 1\nminimumAmount = 100\nsymbol = "USDC"\n'))
    assert got == {
        "startingAsset.network": "must be a string, got integer 1",
        "startingAsset.address": "required key is missing",
        "startingAsset.minimumAmount": 'must be a string of digits in raw base units; write it in quotes: "100"',
        "startingAsset.symbol": "unknown key; known keys: network, address, minimumAmount",
    }


@pytest.mark.parametrize("amount", ['"1.5"', '"-1"', '"100 USDC"', '""', "1.5"])
def test_starting_asset_minimum_amount_must_be_raw_digits(amount: str) -> None:
    """minimumAmount is raw base units written as a string of digits."""
    problem = only_problem(BASE + f'[startingAsset]\nnetwork = "ethereum:1"\naddress = "{ETH_ADDRESS}"\n'
                                  f'minimumAmount = {amount}\n')
    assert problem.key == "startingAsset.minimumAmount"
    assert problem.reason.startswith(
        'must be a string of digits in raw base units (like "100000000" for 100 USDC), got ')


# -- setting problems ------------------------------------------------------------------------


SEVEN = "text, boolean, single_select, integer, number, percentage, address"


@pytest.mark.parametrize(("table", "key", "reason"), [
    ('type = "multi_select"\noptions = ["a"]', "settings.s.type",
     f'"multi_select" is an old Circuit setting type that is no longer supported; use one of the 7 types: {SEVEN}'),
    ('type = "bool"', "settings.s.type",
     f'unknown type "bool" (did you mean "boolean"?); use one of the 7 types: {SEVEN}'),
    ('description = "no type"', "settings.s.type", f"required key is missing; one of {SEVEN}"),
    ('type = "integer"\ndefault = true', "settings.s.default", "must be an integer (a whole number), got boolean true"),
    ('type = "integer"\ndefault = 2.5', "settings.s.default", "must be an integer (a whole number), got float 2.5"),
    ('type = "number"\ndefault = "2"', "settings.s.default", 'must be a number, got "2"'),
    ('type = "number"\ndefault = false', "settings.s.default", "must be a number, got boolean false"),
    ('type = "percentage"\ndefault = 100.5', "settings.s.default",
     "must be a percentage, a number from 0 to 100, got float 100.5"),
    ('type = "percentage"\ndefault = -1', "settings.s.default",
     "must be a percentage, a number from 0 to 100, got integer -1"),
    ('type = "boolean"\ndefault = "true"', "settings.s.default", 'must be true or false, got "true"'),
    ('type = "text"\ndefault = 5', "settings.s.default", "must be text (a string), got integer 5"),
    ('type = "address"\ndefault = "0x123"', "settings.s.default",
     'must be an Ethereum address (0x followed by 40 hex digits), as walletType is ethereum; got "0x123"'),
    ('type = "single_select"\noptions = ["a", "b"]\ndefault = "c"', "settings.s.default",
     'must be one of the options "a", "b", got "c"'),
    ('type = "single_select"', "settings.s.options",
     'required for a single_select setting: a list of strings, like ["ETH", "BTC"]'),
    ('type = "single_select"\noptions = []', "settings.s.options",
     'must be a non-empty list of strings, like ["ETH", "BTC"], got array []'),
    ('type = "single_select"\noptions = ["a", 1]', "settings.s.options",
     'must be a non-empty list of strings, like ["ETH", "BTC"], got array ["a", 1]'),
    ('type = "single_select"\noptions = ["a", "a"]', "settings.s.options",
     'each option may appear once; repeated: "a"'),
    ('type = "text"\noptions = ["a"]', "settings.s.options",
     "only single_select settings take options, this one is text"),
    ('type = "text"\nrequired = "no"', "settings.s.required", 'must be true or false, got "no"'),
    ('type = "text"\ndescription = 3', "settings.s.description", "must be a string, got integer 3"),
    ('type = "text"\ndescripton = "x"', "settings.s.descripton", "unknown key; did you mean description?"),
])
def test_setting_problem(table: str, key: str, reason: str) -> None:
    """Each bad [settings.<key>] declaration is reported at its key path with the expected reason."""
    problem = only_problem(BASE + f"[settings.s]\n{table}\n")
    assert (problem.key, problem.reason) == (key, reason)


def test_setting_that_is_not_a_table() -> None:
    """settings.<key> must be a table."""
    problem = only_problem(BASE + "[settings]\nspeed = 3\n")
    assert (problem.key, problem.reason) == (
        "settings.speed", "must be a table [settings.speed] with type and description, got integer 3")


# -- many problems, TOML errors, the nesting pitfall -----------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    """All problems of a manifest are collected into one ManifestError, one line each."""
    text = """\
name = "a name that is far too long for a card"
walletType = "bitcoin"
allowedExecutionModes = ["auto", "hybrid"]
runtimeIntervalMinutes = 0
version = "one"
colour = "red"

[startingAsset]
network = "ethereum:1"
address = "0x0"
minimumAmount = "ten"

[settings.max_orders]
type = "integer"
default = "3"

[settings.mode]
type = "multi_select"
"""
    with pytest.raises(ManifestError) as info:
        Manifest.from_toml(text, file="agents/x/circuit.toml")
    keys = [p.key for p in info.value.problems]
    assert keys == ["name", "tagline", "walletType", "allowedExecutionModes", "runtimeIntervalMinutes", "version",
                    "colour", "startingAsset.minimumAmount", "settings.max_orders.default", "settings.mode.type"]
    lines = str(info.value).splitlines()
    assert len(lines) == 10
    assert lines[1] == "agents/x/circuit.toml: tagline: required key is missing"
    assert lines[8] == ('agents/x/circuit.toml: settings.max_orders.default:'
                        ' must be an integer (a whole number), got "3"')
    assert all(p.file == "agents/x/circuit.toml" for p in info.value.problems)


def test_toml_syntax_error_has_position() -> None:
    """Malformed TOML is one problem that names the line and column."""
    problem = only_problem('name = "x"\ntagline = "y"\nwalletType "ethereum"\n')
    assert problem.key == ""
    assert problem.reason == "invalid TOML at line 3, column 12: expected '=' after a key in a key/value pair"
    assert str(problem) == ("circuit.toml: invalid TOML at line 3, column 12:"
                            " expected '=' after a key in a key/value pair")


def test_toml_error_at_end_of_file_and_without_python_reprs() -> None:
    """An error at the end of the text gets a line and column too, and table names read as TOML."""
    assert (only_problem('name = "x"\nversion = ').reason
            == "invalid TOML at line 2, column 11 (end of file): invalid value")
    assert (only_problem("[a.b]\nx = 1\n[a.b]\n").reason
            == "invalid TOML at line 3, column 5: cannot declare [a.b] twice")


def test_top_level_key_after_table_header() -> None:
    """A top-level key written after a [table] header is reported as the TOML pitfall, not as missing."""
    text = toml(drop=("version",),
                tables='[startingAsset]\nnetwork = "ethereum:1"\naddress = "x"\nminimumAmount = "1"\n'
                       'version = "1.0.0"\n')
    problem = only_problem(text)
    assert problem.key == "startingAsset.version"
    assert problem.reason.startswith("top-level key version must come before the first [table] header")


def test_top_level_key_after_setting_header() -> None:
    """The pitfall is recognised inside [settings.<key>] and directly under [settings] too."""
    text = toml(drop=("runtimeIntervalMinutes",), tables='[settings.s]\ntype = "text"\nruntimeIntervalMinutes = 5\n')
    problem = only_problem(text)
    assert problem.key == "settings.s.runtimeIntervalMinutes"
    assert "must come before the first [table] header" in problem.reason
    problem = only_problem(BASE + '[settings]\nfilesToExclude = ["x"]\n')
    assert problem.key == "settings.filesToExclude"
    assert problem.reason.startswith("top-level key filesToExclude must come before the first [table] header")


# -- files -----------------------------------------------------------------------------------


def test_from_file_reads_folder_or_file(tmp_path: Path) -> None:
    """from_file accepts the agent folder or the circuit.toml itself, and records the file's path."""
    (tmp_path / "circuit.toml").write_text(BASE, encoding="utf-8")
    assert Manifest.from_file(tmp_path) == Manifest.from_file(tmp_path / "circuit.toml")
    assert Manifest.from_file(tmp_path).file == str(tmp_path / "circuit.toml")


def test_from_file_problems_name_the_file(tmp_path: Path) -> None:
    """Problems read from a file carry its path."""
    (tmp_path / "circuit.toml").write_text(toml(walletType='"tron"'), encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        Manifest.from_file(tmp_path)
    assert str(info.value) == f'{tmp_path / "circuit.toml"}: walletType: must be "ethereum" or "solana", got "tron"'


def test_from_file_without_circuit_toml(tmp_path: Path) -> None:
    """A folder without circuit.toml, or a path that does not exist, is one clear problem."""
    with pytest.raises(ManifestError) as info:
        Manifest.from_file(tmp_path)
    assert info.value.problems == [Problem(str(tmp_path), "", f"no circuit.toml in {tmp_path}")]
    with pytest.raises(ManifestError, match="no such file or directory"):
        Manifest.from_file(tmp_path / "nowhere")


def test_from_file_accepts_bom_and_refuses_non_utf8(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark is fine; bytes that are not UTF-8 are one problem."""
    path = tmp_path / "circuit.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert Manifest.from_file(path).name == "demo"
    path.write_bytes(BASE.encode() + b'category = "\xff"\n')
    with pytest.raises(ManifestError, match=r"not UTF-8 text \(invalid byte at offset"):
        Manifest.from_file(path)


# -- settings resolution ---------------------------------------------------------------------


@pytest.fixture
def dca() -> Manifest:
    return Manifest.from_file(AGENTS / "dca")


def test_resolve_settings_defaults(dca: Manifest) -> None:
    """With no overrides every declared setting gets its default, or None, in declaration order."""
    assert dca.resolve_settings({}) == {
        "buy_amount_usd": 10.0, "max_orders_per_day": 3, "slippage_tolerance": 0.5, "token": "ETH",
        "treasury": None, "dry_run": False, "note": ""}
    assert list(dca.resolve_settings()) == list(dca.settings)


def test_resolve_settings_coerces_strings(dca: Manifest) -> None:
    """--setting KEY=VALUE strings are converted by each setting's type."""
    got = dca.resolve_settings({"buy_amount_usd": "2.5", "max_orders_per_day": "5", "slippage_tolerance": "50",
                                "dry_run": "true", "token": "LINK", "treasury": ETH_ADDRESS, "note": "3"})
    assert got == {"buy_amount_usd": 2.5, "max_orders_per_day": 5, "slippage_tolerance": 50, "token": "LINK",
                   "treasury": ETH_ADDRESS, "dry_run": True, "note": "3"}
    assert type(got["max_orders_per_day"]) is int
    assert dca.resolve_settings({"dry_run": "False", "slippage_tolerance": "12.5%"})["slippage_tolerance"] == 12.5
    assert dca.resolve_settings({"dry_run": "no"})["dry_run"] is False


def test_resolve_settings_accepts_typed_values(dca: Manifest) -> None:
    """Python values of the right type pass; a whole float for an integer becomes an int; None means unset."""
    got = dca.resolve_settings({"buy_amount_usd": 7, "max_orders_per_day": 4.0, "dry_run": True, "token": None})
    assert (got["buy_amount_usd"], got["max_orders_per_day"], got["dry_run"], got["token"]) == (7, 4, True, "ETH")
    assert type(got["max_orders_per_day"]) is int


def test_resolve_settings_reports_every_bad_value(dca: Manifest) -> None:
    """Bad values are all reported in one SettingsError located at settings.<key>."""
    with pytest.raises(SettingsError) as info:
        dca.resolve_settings({"buy_amount_usd": "lots", "max_orders_per_day": "2.5", "slippage_tolerance": "150",
                              "dry_run": "maybe", "token": "DOGE", "treasury": "0x12", "note": 5}, source="--setting")
    assert [str(p) for p in info.value.problems] == [
        '--setting: settings.buy_amount_usd: must be a number, got "lots"',
        '--setting: settings.max_orders_per_day: must be an integer (a whole number), got "2.5"',
        '--setting: settings.slippage_tolerance: must be a percentage, a number from 0 to 100, got "150"',
        '--setting: settings.token: must be one of the options "ETH", "WBTC", "LINK", "UNI", got "DOGE"',
        '--setting: settings.treasury: must be an Ethereum address (0x followed by 40 hex digits), '
        'as walletType is ethereum; got "0x12"',
        '--setting: settings.dry_run: must be true or false, got "maybe"',
        "--setting: settings.note: must be text (a string), got integer 5",
    ]


def test_resolve_settings_unknown_key(dca: Manifest) -> None:
    """An override for an undeclared setting lists the declared ones, suggesting a close match."""
    with pytest.raises(SettingsError) as info:
        dca.resolve_settings({"tokn": "ETH", "colour": "red"})
    declared = "buy_amount_usd, max_orders_per_day, slippage_tolerance, token, treasury, dry_run, note"
    assert reasons(info.value.problems) == {
        "settings.tokn": f"unknown setting; did you mean token? Declared settings: {declared}",
        "settings.colour": f"unknown setting; declared settings: {declared}",
    }
    with pytest.raises(SettingsError,
                       match=re.escape("settings: settings.x: unknown setting; this agent declares no settings")):
        Manifest.from_toml(BASE).resolve_settings({"x": "1"})


def test_resolve_settings_required_missing() -> None:
    """A required setting without a default needs a value."""
    m = Manifest.from_toml(BASE + '[settings.api_key]\ntype = "text"\nrequired = true\n'
                                  '[settings.n]\ntype = "integer"\nrequired = true\ndefault = 1\n')
    with pytest.raises(SettingsError) as info:
        m.resolve_settings({})
    assert info.value.problems == [Problem("settings", "settings.api_key", "required; pass --setting api_key=VALUE")]
    assert m.resolve_settings({"api_key": "k"}) == {"api_key": "k", "n": 1}


def test_resolve_settings_address_for_solana() -> None:
    """An address override is checked against the manifest's walletType."""
    m = Manifest.from_toml(toml(walletType='"solana"', tables='[settings.to]\ntype = "address"\n'))
    assert m.resolve_settings({"to": SOL_ADDRESS}) == {"to": SOL_ADDRESS}
    with pytest.raises(SettingsError, match="must be a Solana address"):
        m.resolve_settings({"to": ETH_ADDRESS})


# -- agent folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["hello", "dca"])
def test_check_agent_folder_good(agent: str) -> None:
    """The example agents pass the check, by folder and by circuit.toml path."""
    assert check_agent_folder(AGENTS / agent) == []
    assert check_agent_folder(AGENTS / agent / "circuit.toml") == []


def test_check_agent_folder_without_main(tmp_path: Path) -> None:
    """A folder with a manifest but no main.py is reported."""
    (tmp_path / "circuit.toml").write_text(BASE, encoding="utf-8")
    assert [str(p) for p in check_agent_folder(tmp_path)] == [
        f"{tmp_path / 'main.py'}: missing: an agent folder needs main.py defining run(agent)"]


def test_check_agent_folder_without_run(tmp_path: Path) -> None:
    """main.py must define run at top level; a nested or TYPE_CHECKING-only run does not count."""
    (tmp_path / "circuit.toml").write_text(BASE, encoding="utf-8")
    (tmp_path / "main.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from x import run\n"
        "class Agent:\n    def run(self, agent):\n        pass\n", encoding="utf-8")
    assert check_agent_folder(tmp_path) == [
        Problem(str(tmp_path / "main.py"), "run", "no top-level run function; define def run(agent): ...")]


def test_check_agent_folder_collects_manifest_and_main_problems(tmp_path: Path) -> None:
    """Manifest problems are returned (not raised) together with main.py problems."""
    (tmp_path / "circuit.toml").write_text(toml(version='"1"'), encoding="utf-8")
    (tmp_path / "main.py").write_text("async def run():\n    pass\ndef unwind():\n    pass\n", encoding="utf-8")
    main = str(tmp_path / "main.py")
    assert check_agent_folder(tmp_path) == [
        Problem(str(tmp_path / "circuit.toml"), "version",
                'must be a semantic version major.minor.patch (like "1.0.0"), got "1"'),
        Problem(main, "run", "must take the agent context as its first parameter: def run(agent)"),
        Problem(main, "unwind", "must take the agent context as its first parameter: def unwind(agent, portfolio)"),
    ]


def test_check_agent_folder_never_executes_main(tmp_path: Path) -> None:
    """main.py is parsed, not imported: its top-level code does not run; syntax errors have a position."""
    (tmp_path / "circuit.toml").write_text(BASE, encoding="utf-8")
    marker = tmp_path / "ran"
    (tmp_path / "main.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"
                                      "from strategy import run\n", encoding="utf-8")
    assert check_agent_folder(tmp_path) == []
    assert not marker.exists()
    (tmp_path / "main.py").write_text("def run(agent)\n    pass\n", encoding="utf-8")
    [problem] = check_agent_folder(tmp_path)
    assert problem.key == "" and problem.reason.startswith("syntax error at line 1, column ")


def test_check_agent_folder_missing_everything(tmp_path: Path) -> None:
    """An empty folder reports the missing manifest and the missing main.py; a bad path one problem."""
    assert [p.reason for p in check_agent_folder(tmp_path)] == [
        f"no circuit.toml in {tmp_path}", "missing: an agent folder needs main.py defining run(agent)"]
    assert check_agent_folder(tmp_path / "nope") == [Problem(str(tmp_path / "nope"), "", "no such file or directory")]


# -- the example agents' code ----------------------------------------------------------------


def load_agent(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_test_agent_{name}", AGENTS / name / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def context(name: str, backend: InProcessMemory, *, session: int = 1,
            settings: dict[str, Any] | None = None) -> AgentContext:
    manifest = Manifest.from_file(AGENTS / name)
    memory = Memory(backend, session_id=session, agent=name, now=lambda: 1_700_000_000)
    return AgentContext(sessionId=session, sessionWalletAddress=ETH_ADDRESS, memory=memory,
                        settings=manifest.resolve_settings(settings or {}))


def test_hello_agent_counts_runs() -> None:
    """hello counts runs per session and across sessions and logs the greeting."""
    hello, backend = load_agent("hello"), InProcessMemory()
    for _ in range(2):
        agent = context("hello", backend)
        hello.run(agent)
    other = context("hello", backend, session=2, settings={"loud": "true", "greeting": "Hi"})
    hello.run(other)
    assert [line.message for line in agent.logs] == ["Hello! This is run 2 of this session (2 across all sessions)."]
    assert [line.message for line in other.logs] == ["HI! THIS IS RUN 1 OF THIS SESSION (3 ACROSS ALL SESSIONS)."]
    hello.unwind(other, Portfolio(balances=({"symbol": "USDC", "amountRaw": "5", "network": "ethereum:1"},)))
    assert other.logs[-1].message == "Unwinding: would close balance USDC 5 on ethereum:1"


def test_dca_agent_enforces_daily_cap() -> None:
    """dca records one intended buy per run until max_orders_per_day, then skips; dry_run records nothing."""
    dca, backend = load_agent("dca"), InProcessMemory()
    settings = {"max_orders_per_day": "2", "buy_amount_usd": "25", "token": "WBTC", "treasury": ETH_ADDRESS}
    messages = []
    for _ in range(3):
        agent = context("dca", backend, settings=settings)
        dca.run(agent)
        messages += [line.message for line in agent.logs]
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert messages[0] == (f"Order 1 of 2 on {day}: would buy $25.00 of WBTC with USDC "
                           f"(slippage tolerance 0.5%) to treasury {ETH_ADDRESS}")
    assert messages[1].startswith(f"Order 2 of 2 on {day}: would buy")
    assert messages[2] == f"Daily cap reached: 2 of 2 orders on {day} (UTC); next buy tomorrow."
    record = json.loads(backend.get("session:1", f"order:{day}:2").value)
    assert record["token"] == "WBTC" and record["amountUsd"] == 25 and record["status"] == "intended"
    dry = context("dca", backend, session=2, settings={"dry_run": "true"})
    dca.run(dry)
    assert dry.logs[0].message.startswith("Dry run: would buy $10.00 of ETH")
    assert backend.get("session:2", f"orders:{day}") is None
