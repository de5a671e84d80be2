"""The agent manifest: ``circuit.toml`` read into checked, immutable value objects.

``Manifest.from_toml`` / ``Manifest.from_file`` check the whole file and raise one
:class:`~tickloop.errors.ManifestError` that lists every problem, each located by its key path.
``Manifest.resolve_settings`` turns session overrides (also ``--setting KEY=VALUE`` strings) into
the flat ``agent.settings`` dict. ``check_agent_folder`` is what ``tickloop check PATH`` reports.

The keys are Circuit's (G2/G3 ``circuit.toml``); beyond Circuit, ``schedule`` may be a table
``{cron = "...", timezone = "..."}``, in which case ``runtimeIntervalMinutes`` may be left out.
"""

from tickloop.manifest.check import check_agent_folder
from tickloop.manifest.model import Manifest
from tickloop.manifest.settings import Setting
from tickloop.manifest.starting_asset import StartingAsset
from tickloop.manifest.vocabulary import (
    DEPLOYMENT_REGIONS,
    EXECUTION_MODES,
    EXTRA_KEYS,
    INTERVAL_MINUTES,
    MAIN_NAME,
    MANIFEST_NAME,
    NAME_MAX,
    REQUIRED_KEYS,
    SCHEDULE_KINDS,
    SCHEDULE_TABLE_KEYS,
    SETTING_KEYS,
    SETTING_TYPES,
    STARTING_ASSET_KEYS,
    TABLE_KEYS,
    TAGLINE_MAX,
    TOP_LEVEL_KEYS,
    WALLET_TYPES,
    DeploymentRegion,
    ExecutionMode,
    SettingType,
    WalletType,
)

__all__ = [
    "DEPLOYMENT_REGIONS",
    "EXECUTION_MODES",
    "EXTRA_KEYS",
    "INTERVAL_MINUTES",
    "MAIN_NAME",
    "MANIFEST_NAME",
    "NAME_MAX",
    "REQUIRED_KEYS",
    "SCHEDULE_KINDS",
    "SCHEDULE_TABLE_KEYS",
    "SETTING_KEYS",
    "SETTING_TYPES",
    "STARTING_ASSET_KEYS",
    "TABLE_KEYS",
    "TAGLINE_MAX",
    "TOP_LEVEL_KEYS",
    "WALLET_TYPES",
    "DeploymentRegion",
    "ExecutionMode",
    "Manifest",
    "Setting",
    "SettingType",
    "StartingAsset",
    "WalletType",
    "check_agent_folder",
]
