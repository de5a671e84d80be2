"""tickloop built-in plugin: the SQL state store (``sqlite`` now; PostgreSQL reuses the same class) and the
suggestion store that shares its database.

Sessions, their transitions, runs and run logs live in one SQLite file, ``<home>/state.db`` by
default (``[state] url = "sqlite:///PATH"``; a relative PATH is taken from the home folder). See
:mod:`tickloop_sql.store` for the store and the modules of its parts, and :mod:`tickloop_sql.sqlite`
for the engine set-up, the owner lock and the change notification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tickloop import hookimpl
from tickloop.registry import Backend

if TYPE_CHECKING:
    from tickloop.config import Config
    from tickloop_sql.store import SqlStateStore


def _sqlite_factory(config: Config | None, url: str) -> SqlStateStore:
    # Imported on first use so loading the plugin (every CLI start) does not import SQLAlchemy.
    from tickloop_sql.sqlite import open_store

    if config is None:
        return open_store(url)
    default = config.home / "state.db" if url == config.state_url and not config.state.url else None
    return open_store(url, base=config.home, source=config.source, path=default)


@hookimpl
def tickloop_register_state_stores(register: Callable[[Backend], None]) -> None:
    register(Backend(name="sqlite", factory=_sqlite_factory,
                     description="SQLite file (WAL), the default: sqlite:///PATH"))


def _suggestions_factory(config: Config | None, state_store: object) -> object:
    from tickloop_sql.store import SqlStateStore
    from tickloop_sql.suggestions import SqlSuggestionStore

    if not isinstance(state_store, SqlStateStore):
        from tickloop.errors import ConfigError, Problem

        raise ConfigError(Problem("config", "suggestions.store",
                                  f"the 'sql' suggestion store keeps suggestions in a SQL state store; {state_store!r}"
                                  " is not one"))
    return SqlSuggestionStore(state_store)


@hookimpl
def tickloop_register_suggestion_stores(register: Callable[[Backend], None]) -> None:
    register(Backend(name="sql", factory=_suggestions_factory,
                     description="in the state store's database (the default)"))
