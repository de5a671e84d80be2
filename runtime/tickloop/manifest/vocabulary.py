"""What ``circuit.toml`` may say: its file names, keys and limits, and the closed sets of values
its keys take (enums; the tuples of their members are kept under their old names)."""

from __future__ import annotations

import enum

from tickloop.ranges import Range
from tickloop.schedule import ScheduleKind

MANIFEST_NAME = "circuit.toml"
MAIN_NAME = "main.py"

NAME_MAX = 32
TAGLINE_MAX = 32
#: runtimeIntervalMinutes: down to 6 ms (tests run sub-second schedules), up to 365 days.
INTERVAL_MINUTES = Range(0.0001, 525_600, unit="minutes")


class WalletType(enum.StrEnum):
    ETHEREUM = "ethereum"
    SOLANA = "solana"


class ExecutionMode(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class SettingType(enum.StrEnum):
    """The 7 types of a ``[settings.<key>]`` declaration, in the order the docs list them."""

    TEXT = "text"
    BOOLEAN = "boolean"
    SINGLE_SELECT = "single_select"
    INTEGER = "integer"
    NUMBER = "number"
    PERCENTAGE = "percentage"
    ADDRESS = "address"


class DeploymentRegion(enum.StrEnum):
    US_EAST_1 = "us-east-1"
    EU_CENTRAL_1 = "eu-central-1"


WALLET_TYPES = tuple(WalletType)
EXECUTION_MODES = tuple(ExecutionMode)
SETTING_TYPES = tuple(SettingType)
DEPLOYMENT_REGIONS = tuple(DeploymentRegion)
#: The schedule kinds ``schedule`` may name as a string; cron is written as a table.
SCHEDULE_KINDS = (ScheduleKind.ROLLING, ScheduleKind.FIXED)

#: Every top-level key, in the order they are checked.
REQUIRED_KEYS = ("name", "tagline", "walletType", "allowedExecutionModes", "runtimeIntervalMinutes", "version")
EXTRA_KEYS = ("imageUrl", "category", "deploymentRegionOverride", "filesToInclude", "filesToExclude")
TABLE_KEYS = ("schedule", "startingAsset", "settings")
TOP_LEVEL_KEYS = REQUIRED_KEYS + TABLE_KEYS + EXTRA_KEYS
SETTING_KEYS = ("type", "description", "required", "default", "options")
STARTING_ASSET_KEYS = ("network", "address", "minimumAmount")
SCHEDULE_TABLE_KEYS = ("cron", "timezone")

# Keys of the older `.circuit.toml` (and of old Circuit pages), with what replaced them.
LEGACY_KEYS = {
    "slug": "an old .circuit.toml key; an agent is identified by its name",
    "description": "an old .circuit.toml key; put the long description in DESCRIPTION.md",
    "shortDescription": "an old .circuit.toml key; use tagline",
    "defaultSleepIntervalMinutes": "an old .circuit.toml key; use runtimeIntervalMinutes",
    "allowedWalletTypes": 'an old .circuit.toml key; use walletType ("ethereum" or "solana")',
    "devRunExecutionMode": "an old .circuit.toml key; the first entry of allowedExecutionModes is the default mode",
    "benchmarkCurrency": "an old .circuit.toml table; it is no longer used",
    "requiredAssets": "an old .circuit.toml table; use a [startingAsset] table",
    "advancedSettings": "an old Circuit table; declare each setting as a [settings.<key>] table",
}
