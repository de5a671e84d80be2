"""The manifest value object: a checked ``circuit.toml``, read with :meth:`Manifest.from_toml` or
:meth:`Manifest.from_file`, which raise one :class:`~tickloop.errors.ManifestError` listing every
problem, each located by its key path (``settings.max_orders.default``,
``startingAsset.minimumAmount``, ``schedule.timezone``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tickloop.errors import ManifestError, Problem
from tickloop.manifest.reading import parse_path, parse_text
from tickloop.manifest.settings import Setting, resolve_settings
from tickloop.manifest.starting_asset import StartingAsset
from tickloop.manifest.vocabulary import MANIFEST_NAME
from tickloop.schedule import Schedule


@attrs.frozen
class Manifest:
    """A checked ``circuit.toml``. ``settings`` keeps declaration order; ``extras`` holds the
    optional keys that tickloop keeps but does not act on (imageUrl, category, ...).

    ``walletType`` and ``allowedExecutionModes`` hold the strings as written (members of
    :class:`~tickloop.manifest.WalletType` and :class:`~tickloop.manifest.ExecutionMode` by value).
    """

    name: str
    tagline: str
    walletType: str
    allowedExecutionModes: tuple[str, ...]
    runtimeIntervalMinutes: float | None
    schedule: Schedule
    version: str
    startingAsset: StartingAsset | None = None
    settings: dict[str, Setting] = attrs.field(factory=dict)
    extras: dict[str, Any] = attrs.field(factory=dict)
    file: str = MANIFEST_NAME

    @property
    def default_mode(self) -> str:
        """The mode a session gets when none is asked for: the first allowed one."""
        return self.allowedExecutionModes[0]

    @classmethod
    def from_toml(cls, text: str, *, file: str = MANIFEST_NAME) -> Manifest:
        """Parse and check ``circuit.toml`` text; raises ManifestError with every problem."""
        problems: list[Problem] = []
        fields = parse_text(text, file, problems)
        if problems or fields is None:
            raise ManifestError(problems)
        return cls(**fields)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read ``path``: a ``circuit.toml`` or an agent folder that contains one."""
        problems: list[Problem] = []
        fields = parse_path(Path(path), problems)
        if problems or fields is None:
            raise ManifestError(problems)
        return cls(**fields)

    def resolve_settings(self, overrides: Mapping[str, Any] | None = None, *,
                         source: str = "settings") -> dict[str, Any]:
        """``agent.settings`` for a session: every declared setting (in declaration order) with its
        override or default, None when it has neither.

        Strings (from ``--setting KEY=VALUE``) are converted by the setting's type: ``true``/
        ``false`` (also yes/no, on/off, 1/0), ``3``, ``2.5``, ``50`` or ``50%``. Numbers from JSON
        are accepted for integer settings when they are whole (``3.0``). A None override counts as
        not given. Raises SettingsError (file ``source``, key ``settings.<key>``) listing every
        problem.
        """
        return resolve_settings(self.settings, overrides, wallet_type=self.walletType, source=source)
