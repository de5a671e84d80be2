"""``SqlStateStore``: the state store on any SQL database SQLAlchemy Core speaks.

Every query here is dialect-neutral Core (RETURNING and "insertmanyvalues" work on SQLite ≥ 3.35
and PostgreSQL alike). What differs between databases is passed in:

- the engine, set up by the dialect's module (:mod:`tickloop_sql.sqlite`: WAL, pragmas, and
  ``BEGIN IMMEDIATE`` for connections carrying the :data:`WRITE` execution option);
- an :class:`Ownership` (who is the one ``serve`` of this store);
- a :class:`Notifier` (how a write wakes the owner without polling).

Writes run in short transactions on ``engine.execution_options(WRITE=True)``; reads run on plain
connections. Statements are built once, at construction, and the hot path (``start_runs``,
``finish_runs``) only builds plain parameter dicts; on SQLite it executes the same statements
compiled to driver SQL with plain tuples (:class:`_FastPath`), about 40 % cheaper.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Protocol, Sequence

from decimal import Decimal

from sqlalchemy import Engine, bindparam, case, func, insert, inspect, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from tickloop.errors import NotFoundError, TickloopError, TransitionError
from tickloop.ledger import LedgerEntry
from tickloop.runs import FAILED, RUNNING, LogLine, Run
from tickloop.schedule import Schedule
from tickloop.sessions import OPEN_STATES, Session, State, Transition, target_state
from tickloop.store import UNCHANGED, NewSession, RunFinish, RunStart
from tickloop.text import storable
from tickloop.wallets import Wallet
from tickloop_sql.intents import IntentsAndHolds
from tickloop_sql.journal import RunJournal
from tickloop_sql.tables import (SESSIONS_REVISION, ledger, meta, metadata, run_logs, runs, sessions,
                                 to_micros, transitions, wallet_funds, wallets)
from tickloop_sql.tables import orders as orders_table

_OPEN = sorted(state.value for state in OPEN_STATES)

#: Execution option marking a connection whose transactions will write. A dialect module may use
#: it to take the write lock up front (SQLite: ``BEGIN IMMEDIATE``); others ignore it.
WRITE = "tickloop_write"

INTERRUPTED = "interrupted: the runtime stopped during this run"

#: Ids per ``IN (...)`` list when loading log lines for many runs (under SQLite's variable limit).
_CHUNK = 500


class Ownership(Protocol):
    """Who is the one ``serve`` process of a store."""

    def acquire(self) -> None:
        """Become the owner, or raise :class:`tickloop.errors.StoreLockedError` naming the owner."""

    def owned(self) -> bool:
        """Whether this object holds the ownership."""

    def held_elsewhere(self) -> bool:
        """Whether someone other than this object holds it (another process or store object)."""

    def release(self) -> None:
        """Give the ownership up (no-op when not held)."""


class Notifier(Protocol):
    """Wakes the owner when a session changed, without polling."""

    def notify(self) -> None:
        """Tell the listener (if any) that sessions changed; never blocks, never raises."""

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` from a background thread for every notification."""

    def close(self) -> None:
        """Stop listening and release sockets or connections."""


class Maintenance(Protocol):
    """Background upkeep the owner of a store runs while it serves (SQLite: WAL checkpoints)."""

    def start(self, engine: Engine) -> None:
        """Begin (called when this store becomes the owner)."""

    def stop(self) -> None:
        """End (called on close)."""


class SqlStateStore(IntentsAndHolds):
    """The :class:`tickloop.store.StateStore` on SQLAlchemy Core (see the module docstring)."""

    def __init__(self, url: str, engine: Engine, *, ownership: Ownership, notifier: Notifier,
                 maintenance: Maintenance | None = None, journal: RunJournal | None = None) -> None:
        self.url = url
        self.engine = engine
        self._maintenance = maintenance
        self._journal = journal
        self._writer = engine.execution_options(**{WRITE: True})
        self._ownership = ownership
        self._notifier = notifier
        self._closed = False
        self._close_lock = threading.Lock()
        self._prepare_statements()
        self._fast = _FastPath.for_engine(engine, self)
        self._create_schema()

    # -- set-up --------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        with self._writer.begin() as conn:
            metadata.create_all(conn)
            _add_missing_columns(conn)
            found = conn.execute(select(meta.c.value).where(meta.c.key == SESSIONS_REVISION)).first()
            if found is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(meta).values(key=SESSIONS_REVISION, value=0))
                except IntegrityError:  # another process created it meanwhile (PostgreSQL)
                    pass

    def _prepare_statements(self) -> None:
        s, r, lg = sessions.c, runs.c, run_logs.c
        self._q_session = select(sessions).where(s.id == bindparam("id"))
        self._q_state = select(s.state).where(s.id == bindparam("id"))
        self._q_revision = select(meta.c.value).where(meta.c.key == SESSIONS_REVISION)
        self._bump_revision = (update(meta).where(meta.c.key == SESSIONS_REVISION)
                               .values(value=meta.c.value + 1))
        self._insert_session = insert(sessions)
        self._insert_transition = insert(transitions)
        # insertmanyvalues: one multi-row INSERT ... RETURNING per page, ids matched to the
        # parameter sets (sort_by_parameter_order) on SQLite and PostgreSQL.
        self._insert_runs = insert(runs).returning(r.id, sort_by_parameter_order=True)
        self._insert_run = insert(runs)
        self._finish_run = update(runs).where(r.id == bindparam("b_id"))
        self._insert_logs = insert(run_logs)
        # A run's finish moves the schedule of a running or paused session only: an unwind or a
        # stop that happened while the run was in flight keeps its own next_run_at.
        self._schedule_session = update(sessions).where(s.id == bindparam("b_id")).values(
            next_run_at=case((or_(s.state == State.RUNNING.value, s.state == State.PAUSED.value), bindparam("b_next", type_=s.next_run_at.type)),
                             else_=s.next_run_at),
            last_scheduled_at=bindparam("b_scheduled", type_=s.last_scheduled_at.type),
            last_finished_at=bindparam("b_finished", type_=s.last_finished_at.type))
        self._q_run = select(runs).where(r.id == bindparam("id"))
        self._q_ledger = (select(ledger).where(ledger.c.session_id.in_(bindparam("ids", expanding=True)))
                          .order_by(ledger.c.id))
        self._q_ledger_since = (select(ledger.c.id, ledger.c.session_id).where(ledger.c.id > bindparam("after"))
                                .order_by(ledger.c.id))
        self._q_run_logs = (select(lg.at, lg.level, lg.message).where(lg.run_id == bindparam("run_id"))
                            .order_by(lg.id))
        self._q_logs_of_runs = (select(lg.run_id, lg.at, lg.level, lg.message)
                                .where(lg.run_id.in_(bindparam("ids", expanding=True))).order_by(lg.id))

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, new: NewSession) -> tuple[Session, Transition]:
        at = _utc(new.at)
        next_run_at = _utc(new.next_run_at)
        asset = new.allocation_asset.lower() if new.allocation_asset else None
        values = {
            "agent": new.agent, "agent_ref": new.agent_ref, "wallet": new.wallet, "mode": new.mode,
            "state": State.RUNNING.value, **_schedule_columns(new.schedule), "settings": dict(new.settings),
            "allocation": new.allocation, "allocation_network": new.allocation_network, "allocation_asset": asset,
            "created_at": at, "updated_at": at, "next_run_at": next_run_at,
        }
        s = sessions.c
        with self._writer.begin() as conn:
            # Checked inside the write transaction, so two starts racing cannot both pass.
            other = conn.execute(select(s.id, s.state).where(
                s.wallet == new.wallet, s.agent == new.agent, s.state.in_(_OPEN)).limit(1)).first()
            if other is not None:
                raise TickloopError(f"agent {new.agent!r} already has session {other.id} ({other.state}) on wallet"
                                    f" {new.wallet}; the same agent cannot run twice on one wallet")
            amount = int(new.allocation or 0)
            if new.wallet_balance is not None and amount:
                taken = sum(int(a) for (a,) in conn.execute(select(s.allocation).where(
                    s.wallet == new.wallet, s.state.in_(_OPEN),
                    s.allocation_network == new.allocation_network, s.allocation_asset == asset)))
                free = new.wallet_balance - taken
                if amount > free:
                    raise TickloopError(
                        f"allocation {amount} exceeds the free balance of wallet {new.wallet}: {free} of"
                        f" {new.wallet_balance} raw units of {new.allocation_asset} on {new.allocation_network}"
                        f" ({taken} allocated to its open sessions)")
            session_id = conn.execute(self._insert_session, values).inserted_primary_key[0]
            conn.execute(self._insert_transition, {
                "session_id": session_id, "action": "start", "from_state": State.CREATED.value,
                "to_state": State.RUNNING.value, "at": at, "reason": new.reason})
            if amount:
                entry = LedgerEntry.allocation(session_id, new.wallet, at=at, network=new.allocation_network or "",
                                               asset_key=new.allocation_asset or "", amount_raw=amount,
                                               symbol=new.allocation_symbol, decimals=new.allocation_decimals)
                conn.execute(insert(ledger), [_ledger_row(entry)])
            conn.execute(self._bump_revision)
        self._notifier.notify()
        session = Session(id=session_id, agent=new.agent, agent_ref=new.agent_ref, wallet=new.wallet,
                          mode=new.mode, state=State.RUNNING, schedule=new.schedule, settings=values["settings"],
                          allocation=new.allocation, created_at=at, next_run_at=next_run_at,
                          allocation_network=new.allocation_network, allocation_asset=asset)
        return session, Transition(session_id, "start", State.CREATED, State.RUNNING, at, new.reason)

    def get_session(self, session_id: int) -> Session:
        with self.engine.connect() as conn:
            row = conn.execute(self._q_session, {"id": session_id}).first()
        if row is None:
            raise NotFoundError(f"session {session_id} does not exist")
        return _session(row)

    def list_sessions(self, *, states: Iterable[State] | None = None, agent: str | None = None,
                      wallet: str | None = None) -> list[Session]:
        query = select(sessions).order_by(sessions.c.id)
        if states is not None:
            query = query.where(sessions.c.state.in_([State(s).value for s in states]))
        if agent is not None:
            query = query.where(sessions.c.agent == agent)
        if wallet is not None:
            query = query.where(sessions.c.wallet == wallet)
        with self.engine.connect() as conn:
            return [_session(row) for row in conn.execute(query)]

    def transition(self, session_id: int, action: str, *, at: datetime, reason: str = "",
                   next_run_at: datetime | None = UNCHANGED,
                   unwind_assets: Sequence[str] | None = UNCHANGED) -> tuple[Session, Transition]:
        at = _utc(at)
        for _attempt in range(2):
            with self._writer.begin() as conn:
                found = conn.execute(self._q_state, {"id": session_id}).scalar()
                if found is None:
                    raise NotFoundError(f"session {session_id} does not exist")
                current = State(found)
                target = target_state(session_id, action, current)  # raises the refusal; nothing written
                values: dict[str, Any] = {"state": target.value, "updated_at": at}
                if next_run_at is not UNCHANGED:
                    values["next_run_at"] = next_run_at
                if target is State.UNWINDING:
                    values["unwind_stage"] = "agent"
                    if unwind_assets is not UNCHANGED:
                        values["unwind_assets"] = list(unwind_assets) if unwind_assets is not None else None
                elif current is State.UNWINDING:
                    values["unwind_stage"] = None
                # Compare-and-set: only if nobody changed the state since we read it. On SQLite
                # the write lock is already held (BEGIN IMMEDIATE); on PostgreSQL (read
                # committed) this is what catches a concurrent change.
                changed = conn.execute(
                    update(sessions).where(sessions.c.id == session_id, sessions.c.state == current.value)
                    .values(values)).rowcount
                if changed != 1:
                    continue  # lost a race: read the new state and try once more
                conn.execute(self._insert_transition, {
                    "session_id": session_id, "action": action, "from_state": current.value,
                    "to_state": target.value, "at": at, "reason": reason})
                conn.execute(self._bump_revision)
                row = conn.execute(self._q_session, {"id": session_id}).one()
            self._notifier.notify()
            return _session(row), Transition(session_id, action, current, target, at, reason)
        # Lost twice: report the refusal for the state it is in now, if it is one.
        target_state(session_id, action, self.get_session(session_id).state)
        raise TransitionError(f"session {session_id}: changed by another process while trying to {action};"
                              " try again")

    def update_unwind(self, session_id: int, *, stage: str, next_run_at: datetime | None) -> Session | None:
        s = sessions.c
        with self._writer.begin() as conn:
            changed = conn.execute(update(sessions).where(s.id == session_id, s.state == State.UNWINDING.value)
                                   .values(unwind_stage=stage, next_run_at=next_run_at)).rowcount
            if not changed:
                return None
            conn.execute(self._bump_revision)
            row = conn.execute(self._q_session, {"id": session_id}).one()
        self._notifier.notify()
        return _session(row)

    def transitions(self, session_id: int) -> list[Transition]:
        t = transitions.c
        query = (select(t.session_id, t.action, t.from_state, t.to_state, t.at, t.reason)
                 .where(t.session_id == session_id).order_by(t.id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            if not rows and conn.execute(self._q_state, {"id": session_id}).first() is None:
                raise NotFoundError(f"session {session_id} does not exist")
        return [Transition(*row) for row in rows]

    def sessions_revision(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(self._q_revision).scalar_one())

    # -- runs ----------------------------------------------------------------------------------

    def start_runs(self, starts: Sequence[RunStart]) -> list[Run]:
        if not starts:
            return []
        fast = self._fast
        if fast is not None:
            rows = [(s.session_id, s.kind, to_micros(s.scheduled_at), to_micros(s.started_at), RUNNING) for s in starts]
            with self._writer.begin() as conn:
                first = fast.insert_runs(conn, rows)
            return [Run(run_id, s.session_id, s.kind, s.scheduled_at, s.started_at)
                    for run_id, s in zip(range(first, first + len(starts)), starts)]
        params = [{"session_id": s.session_id, "kind": s.kind, "scheduled_at": s.scheduled_at,
                   "started_at": s.started_at, "status": RUNNING} for s in starts]
        with self._writer.begin() as conn:
            if len(params) == 1:
                ids = [conn.execute(self._insert_run, params[0]).inserted_primary_key[0]]
            else:
                ids = conn.execute(self._insert_runs, params).scalars().all()
        return [Run(run_id, s.session_id, s.kind, s.scheduled_at, s.started_at) for run_id, s in zip(ids, starts)]

    def finish_runs(self, finishes: Sequence[RunFinish]) -> None:
        if not finishes:
            return
        fast = self._fast
        if fast is not None:
            run_rows, session_rows, log_rows = [], [], []
            open_states = fast.open_states
            for f in finishes:
                finished = to_micros(f.finished_at)
                # Driver SQL skips the columns' bind processing: apply what tables.Text does.
                run_rows.append((finished, f.status, _storable(f.error), _storable(f.traceback), f.run_id))
                session_rows.append((*open_states, to_micros(f.next_run_at), to_micros(f.last_scheduled_at), finished,
                                     f.session_id))
                if f.logs:
                    log_rows += [(f.run_id, f.session_id, seq, to_micros(line.at), line.level,
                                  _storable(line.message)) for seq, line in enumerate(f.logs)]
            with self._writer.begin() as conn:
                fast.finish(conn, run_rows, log_rows, session_rows)
            self._committed(finishes)
            return
        run_rows = [{"b_id": f.run_id, "status": f.status, "finished_at": f.finished_at, "error": f.error,
                     "traceback": f.traceback} for f in finishes]
        session_rows = [{"b_id": f.session_id, "b_next": f.next_run_at, "b_scheduled": f.last_scheduled_at,
                         "b_finished": f.finished_at} for f in finishes]
        log_rows = [{"run_id": f.run_id, "session_id": f.session_id, "seq": seq, "at": line.at, "level": line.level,
                     "message": line.message}
                    for f in finishes if f.logs for seq, line in enumerate(f.logs)]
        with self._writer.begin() as conn:
            conn.execute(self._finish_run, run_rows)
            if log_rows:
                conn.execute(self._insert_logs, log_rows)
            conn.execute(self._schedule_session, session_rows)
        self._committed(finishes)

    def record_finished(self, finish: RunFinish) -> None:
        if self._journal is not None:
            self._journal.append(finish)

    def _committed(self, finishes: Sequence[RunFinish]) -> None:
        if self._journal is not None:
            self._journal.committed({f.run_id for f in finishes})

    def get_run(self, run_id: int) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(self._q_run, {"id": run_id}).first()
            if row is None:
                raise NotFoundError(f"run {run_id} does not exist")
            lines = tuple(LogLine(*line) for line in conn.execute(self._q_run_logs, {"run_id": run_id}))
        return _run(row, lines)

    def runs(self, *, session_id: int | None = None, status: str | None = None, limit: int = 100,
             logs: bool = False) -> list[Run]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if session_id is not None:
            query = query.where(runs.c.session_id == session_id)
        if status is not None:
            query = query.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            by_run: dict[int, list[LogLine]] = {}
            if logs and rows:
                ids = [row.id for row in rows]
                for start in range(0, len(ids), _CHUNK):
                    for run_id, at, level, message in conn.execute(self._q_logs_of_runs,
                                                                   {"ids": ids[start:start + _CHUNK]}):
                        by_run.setdefault(run_id, []).append(LogLine(at, level, message))
        return [_run(row, tuple(by_run.get(row.id, ()))) for row in rows]

    def logs(self, *, session_id: int | None = None, run_id: int | None = None,
             limit: int = 1000, after: int | None = None) -> list[tuple[int, LogLine]]:
        lg = run_logs.c
        query = select(lg.run_id, lg.at, lg.level, lg.message, lg.id)
        if after is None:
            query = query.order_by(lg.id.desc()).limit(limit)
        else:
            query = query.where(lg.id > after).order_by(lg.id).limit(limit)
        if session_id is not None:
            query = query.where(lg.session_id == session_id)
        if run_id is not None:
            query = query.where(lg.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if after is None:
            rows.reverse()
        return [(row[0], LogLine(row[1], row[2], row[3], row[4])) for row in rows]

    def recover_interrupted(self, *, at: datetime) -> list[Run]:
        at = _utc(at)
        replayed: list[int] = []
        if self._journal is not None:
            # Runs that finished before the process died, but whose group was not committed yet.
            finished = self._journal.replay()
            if finished:
                with self.engine.connect() as conn:
                    still = set(conn.execute(select(runs.c.id).where(
                        runs.c.id.in_([f.run_id for f in finished]), runs.c.status == RUNNING)).scalars())
                finishes = [f for f in finished if f.run_id in still]
                self.finish_runs(finishes)
                replayed = [f.run_id for f in finishes]
            self._journal.clear()
        with self._writer.begin() as conn:
            rows = conn.execute(
                update(runs).where(runs.c.status == RUNNING)
                .values(status=FAILED, finished_at=at, error=INTERRUPTED)
                .returning(*runs.c)).all()
        recovered = [self.get_run(run_id) for run_id in replayed] + [_run(row, ()) for row in rows]
        return sorted(recovered, key=lambda run: run.id)

    # -- wallets and the ledger ----------------------------------------------------------------

    def add_wallet(self, wallet: Wallet) -> Wallet:
        row = {"address": wallet.address, "kind": wallet.kind, "created_at": _utc(wallet.created_at),
               "key_env": wallet.key_env, "keystore": wallet.keystore, "password_env": wallet.password_env,
               "label": wallet.label}
        with self._writer.begin() as conn:
            known = conn.execute(select(wallets.c.address).where(
                _lower(wallets.c.address) == wallet.address.lower())).first()
            if known is not None:
                raise TickloopError(f"wallet {known.address} is already added")
            conn.execute(insert(wallets), [row])
        return wallet

    def get_wallet(self, address: str) -> Wallet | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(wallets).where(_lower(wallets.c.address) == address.lower())).first()
        return Wallet.from_row(row) if row is not None else None

    def list_wallets(self) -> list[Wallet]:
        with self.engine.connect() as conn:
            return [Wallet.from_row(row) for row in conn.execute(select(wallets).order_by(wallets.c.created_at))]

    def fund_wallet(self, address: str, network: str, asset: str, amount: int, *,
                    only_if_unfunded: bool = False) -> int:
        f = wallet_funds.c
        key = (f.address == address, f.network == network, f.asset == asset.lower())
        with self._writer.begin() as conn:
            current = conn.execute(select(f.amount).where(*key)).scalar()
            if current is not None and only_if_unfunded:
                return int(current)
            total = int(current or 0) + int(amount)
            if current is None:
                conn.execute(insert(wallet_funds), [{"address": address, "network": network, "asset": asset.lower(),
                                                     "amount": str(total)}])
            else:
                conn.execute(update(wallet_funds).where(*key).values(amount=str(total)))
        return total

    def wallet_funds(self, address: str) -> dict[tuple[str, str], int]:
        f = wallet_funds.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.network, f.asset, f.amount).where(_lower(f.address) == address.lower()))
            return {(network, asset): int(amount) for network, asset, amount in rows}

    def allocated(self, address: str) -> dict[tuple[str, str], int]:
        s = sessions.c
        out: dict[tuple[str, str], int] = {}
        with self.engine.connect() as conn:
            for network, asset, amount in conn.execute(select(s.allocation_network, s.allocation_asset, s.allocation)
                                                       .where(_lower(s.wallet) == address.lower(),
                                                              s.state.in_(_OPEN), s.allocation.is_not(None))):
                key = (network or "", asset or "")
                out[key] = out.get(key, 0) + int(amount)
        return out

    def record_ledger(self, entries: Sequence[LedgerEntry], *, orders: Sequence[tuple[str, str, int]] = ()) -> None:
        with self._writer.begin() as conn:
            book(conn, entries, orders)

    def ledger(self, session_ids: Sequence[int]) -> list[LedgerEntry]:
        if not session_ids:
            return []
        out = []
        with self.engine.connect() as conn:
            for start in range(0, len(session_ids), _CHUNK):
                chunk = list(session_ids[start:start + _CHUNK])
                for row in conn.execute(self._q_ledger, {"ids": chunk}):
                    out.append(_ledger_entry(row))
        if len(session_ids) > _CHUNK:
            out.sort(key=lambda e: e.id or 0)
        return out

    def ledger_sessions(self, after_id: int = 0) -> tuple[int, set[int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._q_ledger_since, {"after": after_id}).all()
        return (rows[-1][0] if rows else after_id), {row[1] for row in rows}

    def order_session(self, venue: str, order_id: str) -> int | None:
        o = orders_table.c
        with self.engine.connect() as conn:
            return conn.execute(select(o.session_id).where(o.venue == venue, o.order_id == str(order_id))).scalar()

    def session_orders(self, session_id: int, venue: str | None = None) -> list[tuple[str, str]]:
        o = orders_table.c
        query = select(o.venue, o.order_id).where(o.session_id == session_id)
        if venue is not None:
            query = query.where(o.venue == venue)
        with self.engine.connect() as conn:
            return [(v, i) for v, i in conn.execute(query)]

    # -- ownership and change notification -----------------------------------------------------

    def acquire_owner(self) -> None:
        self._ownership.acquire()
        if self._maintenance is not None:
            self._maintenance.start(self.engine)

    def owned_by_other_process(self) -> bool:
        """Whether another ``serve`` (another process, or another store object) owns this store."""
        return self._ownership.held_elsewhere()

    def listen(self, callback: Callable[[], None]) -> None:
        self._notifier.listen(callback)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._maintenance is not None:
                self._maintenance.stop()
            if self._journal is not None:
                self._journal.close()
            self._notifier.close()
        finally:
            try:
                self._ownership.release()
            finally:
                self.engine.dispose()

    def __enter__(self) -> SqlStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStateStore({self.url!r})"


# -- the SQLite fast path ----------------------------------------------------------------------


class _FastPath:
    """The scheduler's hot statements (``start_runs``, ``finish_runs``) as driver SQL on SQLite.

    The same Core statements, compiled once for the engine's dialect and executed with plain
    tuples (times converted as :class:`~tickloop_sql.tables.UtcMicros` does), which skips
    SQLAlchemy's per-row parameter processing: the statements are identical, only cheaper to
    feed. New run ids come from ``last_insert_rowid()``: the writing transaction holds SQLite's
    write lock (``BEGIN IMMEDIATE``) and ``runs`` is AUTOINCREMENT, so the rows of one
    ``executemany`` get consecutive ids ending there. Used only when every compiled statement
    takes its parameters in the order written here; otherwise (another dialect, a changed
    table) the store keeps the Core path.
    """

    def __init__(self, insert_runs: str, finish_run: str, schedule_session: str, insert_logs: str,
                 open_states: tuple[str, str]) -> None:
        self._insert_runs = insert_runs
        self._finish_run = finish_run
        self._schedule_session = schedule_session
        self._insert_logs = insert_logs
        self.open_states = open_states

    @classmethod
    def for_engine(cls, engine: Engine, store: SqlStateStore) -> _FastPath | None:
        dialect = engine.dialect
        if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
            return None
        insert_runs = insert(runs).values(session_id=bindparam("session_id"), kind=bindparam("kind"),
                                          scheduled_at=bindparam("scheduled_at"),
                                          started_at=bindparam("started_at"), status=bindparam("status"))
        finish = store._finish_run.values(status=bindparam("status"), finished_at=bindparam("finished_at"),
                                          error=bindparam("error"), traceback=bindparam("traceback"))
        logs = insert(run_logs).values(run_id=bindparam("run_id"), session_id=bindparam("session_id"),
                                       seq=bindparam("seq"), at=bindparam("at"), level=bindparam("level"),
                                       message=bindparam("message"))
        schedule = store._schedule_session
        expected = [
            (insert_runs, ["session_id", "kind", "scheduled_at", "started_at", "status"]),
            (finish, ["finished_at", "status", "error", "traceback", "b_id"]),
            (logs, ["run_id", "session_id", "seq", "at", "level", "message"]),
            (schedule, ["state_1", "state_2", "b_next", "b_scheduled", "b_finished", "b_id"]),
        ]
        compiled = []
        for statement, order in expected:
            c = statement.compile(dialect=dialect)
            if list(c.positiontup or ()) != order:
                return None
            compiled.append(c)
        binds = compiled[3].binds
        open_states = (binds["state_1"].value, binds["state_2"].value)
        if sorted(open_states) != sorted((State.RUNNING.value, State.PAUSED.value)):
            return None
        return cls(compiled[0].string, compiled[1].string, compiled[3].string, compiled[2].string, open_states)

    def insert_runs(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """Insert ``rows``; the id of the first (the others follow it)."""
        conn.exec_driver_sql(self._insert_runs, rows if len(rows) > 1 else rows[0])
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        return last - len(rows) + 1

    def finish(self, conn: Any, run_rows: list[tuple[Any, ...]], log_rows: list[tuple[Any, ...]],
               session_rows: list[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self._finish_run, run_rows)
        if log_rows:
            conn.exec_driver_sql(self._insert_logs, log_rows)
        conn.exec_driver_sql(self._schedule_session, session_rows)


# -- rows to records ---------------------------------------------------------------------------


def _lower(column: Any) -> Any:
    """``lower(column)``, typed like the column so the value compared with it is bound as the
    column's values are (a plain ``func.lower`` binds it untyped: no storable text)."""
    return func.lower(column, type_=column.type)


def _storable(value: Any) -> Any:
    return storable(value) if isinstance(value, str) else value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the state store needs timezone-aware times")
    return value.astimezone(timezone.utc)


def _schedule_columns(schedule: Schedule) -> dict[str, Any]:
    to_dict = getattr(schedule, "to_dict", None)
    if to_dict is not None:
        d = to_dict()
        kind, seconds, cron, tz = d["kind"], d.get("interval_seconds"), d.get("cron"), d.get("timezone") or "UTC"
    else:
        interval = schedule.interval
        kind, cron, tz = schedule.kind, schedule.cron, schedule.timezone
        seconds = interval.total_seconds() if interval is not None else None
    return {"schedule_kind": kind, "schedule_interval_seconds": seconds, "schedule_cron": cron,
            "schedule_timezone": tz}


def _schedule(row: Any) -> Schedule:
    d = {"kind": row.schedule_kind, "interval_seconds": row.schedule_interval_seconds, "cron": row.schedule_cron,
         "timezone": row.schedule_timezone}
    from_dict = getattr(Schedule, "from_dict", None)
    if from_dict is not None:
        return from_dict(d)
    seconds = d["interval_seconds"]
    return Schedule(d["kind"], interval=timedelta(seconds=seconds) if seconds is not None else None, cron=d["cron"],
                    timezone=d["timezone"])


def _session(row: Any) -> Session:
    return Session(id=row.id, agent=row.agent, agent_ref=row.agent_ref, wallet=row.wallet, mode=row.mode,
                   state=row.state, schedule=_schedule(row), settings=row.settings, allocation=row.allocation,
                   created_at=row.created_at, next_run_at=row.next_run_at, last_scheduled_at=row.last_scheduled_at,
                   last_finished_at=row.last_finished_at, allocation_network=row.allocation_network,
                   allocation_asset=row.allocation_asset, unwind_stage=row.unwind_stage,
                   unwind_assets=row.unwind_assets)


_DECIMALS = ("amount", "price", "fee")


def book(conn: Any, entries: Sequence[LedgerEntry], orders: Sequence[tuple[str, str, int]]) -> None:
    """Append ledger entries and record resting orders' sessions, in the caller's transaction."""
    if entries:
        conn.execute(insert(ledger), [_ledger_row(e) for e in entries])
    o = orders_table.c
    for venue, order_id, session_id in orders:
        known = conn.execute(select(o.session_id).where(o.venue == venue, o.order_id == str(order_id))).first()
        if known is None:
            conn.execute(insert(orders_table), [{"venue": venue, "order_id": str(order_id), "session_id": session_id}])


def _ledger_row(entry: LedgerEntry) -> dict[str, Any]:
    row = {name: getattr(entry, name) for name in ledger.c.keys() if name != "id"}
    for name in _DECIMALS:
        if row[name] is not None:
            row[name] = format(row[name], "f")
    return row


def _ledger_entry(row: Any) -> LedgerEntry:
    m = dict(row._mapping)
    for name in _DECIMALS:
        if m[name] is not None:
            m[name] = Decimal(m[name])
    return LedgerEntry(**m)



def _add_missing_columns(conn: Any) -> None:
    """Add columns a newer tickloop defines to tables an older one created. Additive only:
    every column added since the first release is nullable, so old rows stay valid."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}'))


def _run(row: Any, lines: tuple[LogLine, ...]) -> Run:
    return Run(id=row.id, session_id=row.session_id, kind=row.kind, scheduled_at=row.scheduled_at,
               started_at=row.started_at, finished_at=row.finished_at, status=row.status, error=row.error,
               traceback=row.traceback, logs=lines)
