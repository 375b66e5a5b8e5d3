"""Recording an agent's status or heartbeat: its history (each message once, keyed by agent,
channel, sent_at and state) and the latest known state of the agent."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.store import tables
from aggregator.store.rows import PENDING_FIELDS, STATS_FIELDS, StatusRecord, status_values
from footfall.contract import AgentState, Channel


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def record_status(conn: sa.Connection, record: StatusRecord) -> bool:
    """Add one status message to the history and update the agents table; False (and nothing
    changed) for a copy of a message stored already."""
    status = record.status
    values = status_values(status)
    key = {"site": status.site, "spot": status.spot, "agent": status.agent}
    history = (
        _insert(conn, tables.agent_status_history)
        .values(
            **key,
            channel=record.channel.value,
            sent_at=status.sent_at,
            received_at=record.received_at,
            **values,
        )
        .on_conflict_do_nothing()
        .returning(tables.agent_status_history.c.id)
    )
    if conn.execute(history).first() is None:
        return False
    pending = record.channel is Channel.HEARTBEAT and status.stats is not None
    first_values = dict(values)
    if not pending:
        first_values.update(dict.fromkeys(PENDING_FIELDS))
    first = (
        _insert(conn, tables.agents)
        .values(
            **key,
            first_seen_at=record.received_at,
            last_seen_at=record.received_at,
            last_sent_at=status.sent_at,
            last_channel=record.channel.value,
            state_since=record.received_at,
            pending_at=status.sent_at if pending else None,
            **first_values,
        )
        .on_conflict_do_nothing()
        .returning(tables.agents.c.agent)
    )
    if conn.execute(first).first() is not None:
        return True
    t = tables.agents
    where = sa.and_(t.c.site == status.site, t.c.spot == status.spot, t.c.agent == status.agent)
    select = sa.select(t).where(where)
    if conn.dialect.name == "postgresql":
        select = select.with_for_update()
    current = conn.execute(select).mappings().one()
    changes: dict[str, Any] = {"last_seen_at": max(current["last_seen_at"], record.received_at)}
    newer = status.sent_at > current["last_sent_at"]
    # An online message older than what we have is a late copy and must not undo a later
    # offline. An offline message is always news: the broker's will carries the sent_at of
    # the connection it belongs to, so its time says nothing about its order.
    if status.state is AgentState.OFFLINE or newer:
        if status.state.value != current["state"]:
            changes["state_since"] = record.received_at
        if newer:
            changes["last_sent_at"] = status.sent_at
        changes["last_channel"] = record.channel.value
        for name, value in values.items():
            if name in PENDING_FIELDS or (name in STATS_FIELDS and status.stats is None):
                continue
            changes[name] = value
    # What is pending is what the latest heartbeat counted, whatever the status messages say
    # around it: the offline status is built before the last crops are uploaded. Heartbeats
    # may arrive out of order after a reconnect, hence by their own sent_at.
    held = current["pending_at"]
    if pending and (held is None or status.sent_at >= held):
        changes["pending_at"] = status.sent_at
        for name in PENDING_FIELDS:
            changes[name] = values[name]
    conn.execute(sa.update(t).where(where).values(**changes))
    return True
