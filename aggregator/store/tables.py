"""The store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

The events table is built from its declaration in :mod:`aggregator.event_columns`. The schema is
created and changed by :mod:`aggregator.store.migrations` only; a test checks that a migrated
database matches these definitions.
"""

from typing import Any

import sqlalchemy as sa

from aggregator import event_columns as declared
from aggregator.event_columns import EVENT_COLUMNS, EventColumn
from aggregator.store.types import UtcDateTime, sa_type

metadata = sa.MetaData()

ID = sa_type(declared.ID_TEXT)
ENUM_TEXT = sa_type(declared.ENUM_TEXT)
SHORT_TEXT = sa.String(64)
NOTE_TEXT = sa_type(declared.NOTE_TEXT)
SOURCE_TEXT = sa_type(declared.SOURCE_TEXT)


def _column(column: EventColumn) -> "sa.Column[Any]":
    return sa.Column(
        column.name,
        sa_type(column.type),
        primary_key=column.primary_key,
        nullable=column.may_be_null,
        comment=column.comment,
    )


events = sa.Table("events", metadata, *(_column(c) for c in EVENT_COLUMNS))
# The workbook reads one site over a UTC range derived from local days, in first_seen order;
# event_id is in the index so the keyset pagination of iter_events is served by it alone.
sa.Index("ix_events_site_first_seen", events.c.site, events.c.first_seen, events.c.event_id)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("source", SOURCE_TEXT, nullable=False),
    sa.Column("topic", sa.String(1024), nullable=True, comment="Null for replayed lines"),
    sa.Column("site", ID, nullable=True, comment="From the topic, when the topic was valid"),
    sa.Column("spot", ID, nullable=True),
    sa.Column("agent", ID, nullable=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("field", sa.String(200), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False, comment="Raw bytes, truncated"),
    sa.Column("payload_size", sa.Integer(), nullable=False, comment="Size before truncation"),
)
sa.Index("ix_dead_letters_received_at", dead_letters.c.received_at)
sa.Index("ix_dead_letters_site_received_at", dead_letters.c.site, dead_letters.c.received_at)


def _status_columns() -> list["sa.Column[Any]"]:
    """The fields of an AgentStatus, shared by the history and the latest-per-agent table."""
    return [
        sa.Column("state", ENUM_TEXT, nullable=False),
        sa.Column("software_version", SHORT_TEXT, nullable=False),
        sa.Column("config_version", SHORT_TEXT, nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("frames_in", sa.BigInteger(), nullable=True),
        sa.Column("frames_processed", sa.BigInteger(), nullable=True),
        sa.Column("frames_dropped", sa.BigInteger(), nullable=True),
        sa.Column("events_emitted", sa.BigInteger(), nullable=True),
        sa.Column("events_sent", sa.BigInteger(), nullable=True),
        sa.Column("outbox_depth", sa.BigInteger(), nullable=True),
        sa.Column("crops_pending", sa.BigInteger(), nullable=True),
        sa.Column("crops_dropped", sa.BigInteger(), nullable=True),
        sa.Column("source_reconnects", sa.BigInteger(), nullable=True),
        sa.Column("last_error", NOTE_TEXT, nullable=True),
        sa.Column("source_state", ENUM_TEXT, nullable=True),
        sa.Column("source_error", NOTE_TEXT, nullable=True),
    ]


STATUS_FIELDS: tuple[str, ...] = tuple(c.name for c in _status_columns())

agent_status_history = sa.Table(
    "agent_status_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("site", ID, nullable=False),
    sa.Column("spot", ID, nullable=False),
    sa.Column("agent", ID, nullable=False),
    sa.Column("channel", ENUM_TEXT, nullable=False, comment="status or heartbeat"),
    sa.Column("sent_at", UtcDateTime(), nullable=False, comment="Agent clock"),
    sa.Column("received_at", UtcDateTime(), nullable=False, comment="Aggregator clock"),
    *_status_columns(),
    # A retained status is delivered again on every resubscribe and to every aggregator; this key
    # makes those copies no-ops.
    sa.UniqueConstraint(
        "site", "spot", "agent", "channel", "sent_at", "state", name="uq_agent_status_history"
    ),
)
sa.Index(
    "ix_agent_status_history_site_sent_at",
    agent_status_history.c.site,
    agent_status_history.c.sent_at,
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("site", ID, primary_key=True),
    sa.Column("spot", ID, primary_key=True),
    sa.Column("agent", ID, primary_key=True),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False, comment="First message received"),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False, comment="Last message received"),
    sa.Column("last_sent_at", UtcDateTime(), nullable=False, comment="sent_at of that message"),
    sa.Column("last_channel", ENUM_TEXT, nullable=False),
    sa.Column("state_since", UtcDateTime(), nullable=False, comment="When state last changed"),
    *_status_columns(),
    sa.Column(
        "pending_at",
        UtcDateTime(),
        nullable=True,
        comment="sent_at of the heartbeat outbox_depth and crops_pending come from",
    ),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", UtcDateTime(), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("site", ID, nullable=False),
    sa.Column("day", sa.Date(), nullable=False, comment="Local day of the site the report covers"),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("attempts", sa.SmallInteger(), nullable=False),
    sa.Column("object_key", sa.String(512), nullable=True),
    sa.Column("url_expires_at", UtcDateTime(), nullable=True),
    sa.Column("people", sa.BigInteger(), nullable=False),
    sa.Column("emailed", sa.String(1000), nullable=True, comment="Comma-separated recipients"),
    sa.Column("error", sa.String(1000), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=False),
)
sa.Index("ix_deliveries_site_day", deliveries.c.site, deliveries.c.day)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site", ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=True, comment="Display name for the workbook"),
    sa.Column("timezone", SHORT_TEXT, nullable=False, comment="IANA time zone of the site"),
    sa.Column("registered_at", UtcDateTime(), nullable=False, comment="Last written"),
    comment="Sites as an aggregator's configuration declares them, so that commands without "
    "that configuration report them in their own time zone",
)


spot_calibrations = sa.Table(
    "spot_calibrations",
    metadata,
    sa.Column("site", ID, primary_key=True),
    sa.Column("spot", ID, primary_key=True),
    sa.Column("role", SHORT_TEXT, primary_key=True, comment="gender or age"),
    sa.Column("model", SHORT_TEXT, nullable=False, comment="The classifier head it corrects"),
    sa.Column("labelled", sa.Integer(), nullable=False, comment="People the operator labelled"),
    sa.Column("record", sa.Text(), nullable=False, comment="The calibration, as JSON"),
    sa.Column("fitted_at", UtcDateTime(), nullable=False),
    comment="Site calibrations: the classifier's confusion measured on a labelled sample of one "
    "spot's own crops (footfall-aggregator calibrate); that spot's shares use it",
)
