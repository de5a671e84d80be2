"""Errors a user can cause. The CLI prints them as one line each, never with a traceback."""

from __future__ import annotations

import attrs


@attrs.frozen
class Problem:
    """One thing wrong with an input, located by file and key."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.reason}"


class TickloopError(Exception):
    """Base for errors caused by input, configuration or a refused request.

    The message is complete on its own: it names the file, key or field and the reason.
    """


class InputError(TickloopError):
    """Bad input that may hold several problems (a manifest, a config file, settings)."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ManifestError(InputError):
    """A circuit.toml that cannot be used."""


class ConfigError(InputError):
    """A tickloop.toml or environment override that cannot be used."""


class SettingsError(InputError):
    """Session settings that do not match the agent's [settings.*] declarations."""


class TransitionError(TickloopError):
    """A lifecycle change the state machine refuses (for example, resuming a stopped session)."""


class NotFoundError(TickloopError):
    """A session, run or other record that does not exist."""


class UnknownAgentError(TickloopError):
    """An agent reference that is neither an installed entry point nor an agent folder."""


class UnknownBackendError(TickloopError):
    """A backend name in configuration that no installed plugin provides."""


class PluginError(TickloopError):
    """A plugin that failed to load or does not match the hook specifications."""


class StoreLockedError(TickloopError):
    """Another serve process owns the state store."""


class AgentError(TickloopError):
    """An agent that was found but cannot be used (its main.py fails to import, has no run)."""
