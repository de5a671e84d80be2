"""Sessions and their audit trail in the state store (the ``SessionStore`` part of ``SqlStateStore``).

Every lifecycle change is one transaction: the compare-and-set on the session's state, its
transition row and a bump of the sessions revision (the number the scheduler watches), and the
owner is told after the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from tickloop.errors import NotFoundError, TickloopError, TransitionError
from tickloop.ledger import LedgerEntry
from tickloop.schedule import Schedule
from tickloop.sessions import OPEN_STATES, Session, State, Transition, target_state
from tickloop.store import UNCHANGED, NewSession
from tickloop_sql.connections import Connections, new_id
from tickloop_sql.ledger import book
from tickloop_sql.tables import SESSIONS_REVISION, meta, sessions, transitions, utc

#: The states of open sessions, as stored.
OPEN = sorted(state.value for state in OPEN_STATES)

#: Run in the transaction of every change the scheduler must see: a session created, a state
#: changed, a hold placed or released.
BUMP_REVISION = update(meta).where(meta.c.key == SESSIONS_REVISION).values(value=meta.c.value + 1)


class SqlSessions(Connections):
    """Sessions, their transitions and the sessions revision."""

    _q_session = select(sessions).where(sessions.c.id == bindparam("id"))
    _q_state = select(sessions.c.state).where(sessions.c.id == bindparam("id"))
    _q_revision = select(meta.c.value).where(meta.c.key == SESSIONS_REVISION)
    _insert_session = insert(sessions)
    _insert_transition = insert(transitions)

    def create_session(self, new: NewSession) -> tuple[Session, Transition]:
        at = utc(new.at)
        next_run_at = utc(new.next_run_at)
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
                s.wallet == new.wallet, s.agent == new.agent, s.state.in_(OPEN)).limit(1)).first()
            if other is not None:
                raise TickloopError(f"agent {new.agent!r} already has session {other.id} ({other.state}) on wallet"
                                    f" {new.wallet}; the same agent cannot run twice on one wallet")
            amount = int(new.allocation or 0)
            if new.wallet_balance is not None and amount:
                taken = sum(int(a) for (a,) in conn.execute(select(s.allocation).where(
                    s.wallet == new.wallet, s.state.in_(OPEN),
                    s.allocation_network == new.allocation_network, s.allocation_asset == asset)))
                free = new.wallet_balance - taken
                if amount > free:
                    raise TickloopError(
                        f"allocation {amount} exceeds the free balance of wallet {new.wallet}: {free} of"
                        f" {new.wallet_balance} raw units of {new.allocation_asset} on {new.allocation_network}"
                        f" ({taken} allocated to its open sessions)")
            session_id = new_id(conn.execute(self._insert_session, values))
            conn.execute(self._insert_transition, {
                "session_id": session_id, "action": "start", "from_state": State.CREATED.value,
                "to_state": State.RUNNING.value, "at": at, "reason": new.reason})
            if amount:
                entry = LedgerEntry.allocation(session_id, new.wallet, at=at, network=new.allocation_network or "",
                                               asset_key=new.allocation_asset or "", amount_raw=amount,
                                               symbol=new.allocation_symbol, decimals=new.allocation_decimals)
                book(conn, [entry], ())
            conn.execute(BUMP_REVISION)
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
        at = utc(at)
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
                conn.execute(BUMP_REVISION)
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
            conn.execute(BUMP_REVISION)
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
