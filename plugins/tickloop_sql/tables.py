"""The state store's schema, in SQLAlchemy Core: the same tables on SQLite and PostgreSQL.

Times are stored as integer microseconds since the Unix epoch, UTC (:class:`UtcMicros`). Why
not ``DateTime(timezone=True)``: SQLite has no date/time type, and SQLAlchemy's SQLite
``DateTime`` stores naive ISO strings (the offset is dropped on the way in), while PostgreSQL's
``timestamptz`` comes back in the connection's time zone through a driver-specific conversion.
A 64-bit integer is exact to the microsecond (Python's resolution), comes back identical from
both databases, sorts and indexes as a number, is compact, and costs one integer division to
write and one ``timedelta`` to read — cheaper than formatting and parsing ISO strings on the
scheduler's hot path. Every value read back is a timezone-aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON as _JSON
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
    func,
    insert_sentinel,
)
from sqlalchemy import Text as _Text

from tickloop.store import MAX_ID
from tickloop.text import storable, storable_data

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime | None) -> int | None:
    """What a :class:`UtcMicros` column stores for ``value``; naive datetimes are refused."""
    if value is None:
        return None
    try:
        return (value - EPOCH) // _MICROSECOND
    except TypeError:  # aware minus naive: the cheap way to find a naive value on the hot path
        raise _naive(value) from None


def utc(value: datetime) -> datetime:
    """``value`` in UTC, as a :class:`UtcMicros` column gives it back; naive datetimes are refused."""
    if value.tzinfo is None:
        raise _naive(value)
    return value.astimezone(UTC)


def _naive(value: datetime) -> ValueError:
    return ValueError(f"naive datetime {value.isoformat()}: the state store needs timezone-aware times")


def storable_value(value: Any) -> Any:
    """What a :class:`Text` column stores for ``value`` (for statements fed to the driver as they are)."""
    return storable(value) if isinstance(value, str) else value


def lower(column: Any) -> Any:
    """``lower(column)``, typed like the column so the value compared with it is bound as the
    column's values are (a plain ``func.lower`` binds it untyped: no storable text)."""
    return func.lower(column, type_=column.type)


class UtcMicros(TypeDecorator):
    """A timezone-aware datetime stored as integer microseconds since the epoch (UTC)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> int | None:
        return to_micros(value)

    def process_result_value(self, value: int | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return EPOCH + timedelta(microseconds=value)


class Text(TypeDecorator):
    """Text that is always storable: lone surrogates become their escapes
    (:func:`tickloop.text.storable`), so untrusted text (agent logs and errors, settings, venue
    answers) can never make a write fail. Stored as plain ``TEXT``. It takes the name of
    SQLAlchemy's ``Text`` in this module on purpose: every text column, present and future, is
    one of these."""

    impl = _Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return storable_value(value)


class JSON(TypeDecorator):
    """JSON whose strings (keys and values) are storable, like :class:`Text` (and, like it,
    named so that every JSON column is one)."""

    impl = _JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return storable_data(value)


class Id(TypeDecorator):
    """Integer ids: BIGINT on PostgreSQL, "INTEGER PRIMARY KEY" (the rowid) on SQLite.

    An id outside the 64-bit range (``tickloop.store.MAX_ID``) cannot belong to a row, and the
    database drivers refuse it (``OverflowError``); it is bound as 0, an id no row has, so a
    lookup of it finds nothing and the caller reports "does not exist"."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(Integer() if dialect.name == "sqlite" else BigInteger())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, int) and not -MAX_ID - 1 <= value <= MAX_ID:
            return 0
        return value

metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent", Text, nullable=False),  # the manifest name
    Column("agent_ref", Text, nullable=False),  # entry-point name or absolute folder path
    Column("wallet", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("state", Text, nullable=False),
    # The schedule (tickloop.schedule.Schedule): rolling | fixed | cron.
    Column("schedule_kind", Text, nullable=False),
    Column("schedule_interval_seconds", Float, nullable=True),
    Column("schedule_cron", Text, nullable=True),
    Column("schedule_timezone", Text, nullable=False, default="UTC"),
    Column("settings", JSON, nullable=False),
    Column("allocation", Text, nullable=True),  # raw units of the starting asset, as text
    # The starting asset the allocation is in (network, token address), for the wallet's free
    # balance: allocations of open sessions on one wallet and asset may not exceed its funds.
    Column("allocation_network", Text, nullable=True),
    Column("allocation_asset", Text, nullable=True),
    # While unwinding: "agent" (the agent's unwind is due) or "close" (only the closers are
    # due); the assets the user selected (JSON list), or NULL for everything.
    Column("unwind_stage", Text, nullable=True),
    Column("unwind_assets", JSON, nullable=True),
    Column("created_at", UtcMicros, nullable=False),
    Column("updated_at", UtcMicros, nullable=False),  # the last lifecycle change (transition)
    Column("next_run_at", UtcMicros, nullable=True),
    Column("last_scheduled_at", UtcMicros, nullable=True),
    Column("last_finished_at", UtcMicros, nullable=True),
    # Ids are shown to people: never reuse one, even after rows are deleted.
    sqlite_autoincrement=True,
)
Index("ix_sessions_state", sessions.c.state)
# Starting a session looks for an open session of the same agent on the same wallet.
Index("ix_sessions_wallet_agent", sessions.c.wallet, sessions.c.agent)

transitions = Table(
    "transitions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("from_state", Text, nullable=False),
    Column("to_state", Text, nullable=False),
    Column("at", UtcMicros, nullable=False),
    Column("reason", Text, nullable=False, default=""),
)
Index("ix_transitions_session", transitions.c.session_id, transitions.c.id)

runs = Table(
    "runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("kind", Text, nullable=False),  # run | unwind
    Column("scheduled_at", UtcMicros, nullable=False),
    Column("started_at", UtcMicros, nullable=True),
    Column("finished_at", UtcMicros, nullable=True),
    Column("status", Text, nullable=False),  # running | succeeded | failed | timed_out | skipped
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    # Filled by SQLAlchemy with the row's position in a multi-row INSERT ... RETURNING, so the
    # returned ids can be matched to their parameter sets in one statement per page. PostgreSQL
    # could order by the id sequence; SQLite gives no such guarantee, and without this column
    # start_runs() would fall back to one INSERT per run. NULL for single-row inserts.
    insert_sentinel("insert_sentinel"),
    sqlite_autoincrement=True,
)
Index("ix_runs_session", runs.c.session_id, runs.c.id)
# Only runs in flight: keeps recover_interrupted() and runs(status="running") from scanning the
# whole history; a row enters it at start and leaves it at finish.
Index("ix_runs_running", runs.c.id, sqlite_where=runs.c.status == "running",
      postgresql_where=runs.c.status == "running")

run_logs = Table(
    "run_logs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("runs.id"), nullable=False),
    Column("session_id", Id, nullable=False),  # denormalised from runs, for logs(session_id=)
    Column("seq", Integer, nullable=False),  # position within its run, from 0
    Column("at", UtcMicros, nullable=False),
    Column("level", Text, nullable=False),  # info | error | debug
    Column("message", Text, nullable=False),
)
Index("ix_run_logs_run", run_logs.c.run_id)
Index("ix_run_logs_session", run_logs.c.session_id, run_logs.c.id)

wallets = Table(
    "wallets", metadata,
    Column("address", Text, primary_key=True),  # checksummed (EIP-55) as added
    Column("kind", Text, nullable=False),  # paper | env | keystore
    Column("created_at", UtcMicros, nullable=False),
    # Where the key comes from; the key itself is never stored here.
    Column("key_env", Text, nullable=True),
    Column("keystore", Text, nullable=True),
    Column("password_env", Text, nullable=True),
    Column("label", Text, nullable=False, default=""),
)

# What a wallet was funded with, per asset (paper wallets; real wallets ask their venue).
wallet_funds = Table(
    "wallet_funds", metadata,
    Column("address", Text, ForeignKey("wallets.address"), primary_key=True),
    Column("network", Text, primary_key=True),
    Column("asset", Text, primary_key=True),  # token address, lower case
    Column("amount", Text, nullable=False),  # raw units, as text (exceeds 64 bits for 18 decimals)
)

# The per-session ledger (tickloop.ledger.LedgerEntry): allocations and fills. Decimals are text.
ledger = Table(
    "ledger", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("wallet", Text, nullable=False),
    Column("kind", Text, nullable=False),  # allocation | fill
    Column("at", UtcMicros, nullable=False),
    Column("network", Text, nullable=False),
    Column("asset_key", Text, nullable=False),
    Column("amount", Text, nullable=False),
    Column("symbol", Text, nullable=True),
    Column("decimals", Integer, nullable=True),
    Column("venue", Text, nullable=True),
    Column("coin", Text, nullable=True),
    Column("price", Text, nullable=True),
    Column("fee", Text, nullable=False, default="0"),
    Column("contract", Text, nullable=True),
    Column("cash_network", Text, nullable=True),
    Column("cash_asset", Text, nullable=True),
    Column("cash_symbol", Text, nullable=True),
    Column("cash_decimals", Integer, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("meta", JSON, nullable=True),
    Column("note", Text, nullable=True),  # why an adjustment was booked (tickloop reconcile adopt|close)
    sqlite_autoincrement=True,
)
Index("ix_ledger_session", ledger.c.session_id, ledger.c.id)

# Which session placed each order still resting on a venue: later fills are booked to it, and a
# closer cancels only its own session's orders on a shared account.
orders = Table(
    "orders", metadata,
    Column("venue", Text, primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
)
Index("ix_orders_session", orders.c.session_id)

suggestions = Table(
    "suggestions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("action", JSON, nullable=False),  # tickloop.actions.Action, unstructured
    Column("status", Text, nullable=False),
    Column("created_at", UtcMicros, nullable=False),
    Column("expires_at", UtcMicros, nullable=True),
    Column("decided_at", UtcMicros, nullable=True),
    Column("deleted_at", UtcMicros, nullable=True),
    Column("executed_at", UtcMicros, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    # The process that approved it (tickloop.intents.Owner), so a stuck approval can be told apart
    # from one still executing.
    Column("decided_by", Text, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_suggestions_session", suggestions.c.session_id, suggestions.c.id)
# Every run start soft-deletes its session's pending suggestions: only pending rows are indexed.
Index("ix_suggestions_pending", suggestions.c.session_id, sqlite_where=suggestions.c.status == "pending",
      postgresql_where=suggestions.c.status == "pending")
# Recovery looks for approvals left by a process that died: only approved rows are indexed.
Index("ix_suggestions_approved", suggestions.c.id, sqlite_where=suggestions.c.status == "approved",
      postgresql_where=suggestions.c.status == "approved")

# Every action sent to a venue, recorded before it is sent (tickloop.intents): recovery asks the
# venue by client_id when the owner died while it was "sending".
intents = Table(
    "intents", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("session_id", Id, ForeignKey("sessions.id"), nullable=False),
    Column("wallet", Text, nullable=False),
    Column("venue", Text, nullable=False),
    Column("action", JSON, nullable=False),  # tickloop.actions.Action, unstructured
    Column("client_id", Text, nullable=False),
    Column("suggestion_id", Id, nullable=True),
    Column("owner", Text, nullable=False),  # host|pid/start of the sending process
    Column("status", Text, nullable=False),  # sending | executed | failed
    Column("created_at", UtcMicros, nullable=False),
    Column("finished_at", UtcMicros, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_intents_session", intents.c.session_id, intents.c.id)
Index("ix_intents_suggestion", intents.c.suggestion_id)
Index("ix_intents_account", intents.c.wallet, intents.c.venue, intents.c.id)
# Recovery looks for intents in flight every minute: only those rows are indexed.
Index("ix_intents_sending", intents.c.id, sqlite_where=intents.c.status == "sending",
      postgresql_where=intents.c.status == "sending")

# Sessions the scheduler does not run until reconciliation finds their ledger and venue agree.
holds = Table(
    "holds", metadata,
    Column("session_id", Id, ForeignKey("sessions.id"), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("since", UtcMicros, nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: meta key of the counter that changes whenever a session is created or changes state.
SESSIONS_REVISION = "sessions_revision"
