"""``AgentStatus``: the retained online/offline status and the periodic heartbeat of an agent."""

from pydantic import Field

from footfall.contract.events import ModelRef
from footfall.contract.types import Count, Note, Record, SchemaVersion1, ShortText, UtcTimestamp
from footfall.contract.vocab import AgentState, SourceState
from footfall.ids import SafeId


class AgentStats(Record):
    """Counters since the agent process started."""

    started_at: UtcTimestamp = Field(description="When the agent process started")
    uptime_seconds: float = Field(ge=0.0, description="Seconds since start")
    frames_in: Count = Field(description="Frames read from the source")
    frames_processed: Count = Field(description="Frames that went through the pipeline")
    frames_dropped: Count = Field(description="Frames dropped because processing fell behind")
    fps: float = Field(ge=0.0, description="Processed frames per second, recent average")
    events_emitted: Count = Field(description="PersonEvents produced by the pipeline")
    events_sent: Count = Field(description="PersonEvents acknowledged by the broker")
    outbox_depth: Count = Field(description="Events waiting in the on-device outbox")
    crops_pending: Count = Field(description="Face crops waiting for upload")
    crops_dropped: Count = Field(description="Face crops dropped to keep the outbox in its cap")
    source_reconnects: Count = Field(description="Times the video source was reopened")
    # Optional, so that heartbeats of agents that predate them stay valid.
    source_state: SourceState | None = Field(
        default=None,
        description="What the video source is doing: starting, delivering, reconnecting or "
        "ended; null when the agent runs no pipeline (e.g. only delivers its outbox)",
    )
    source_error: Note | None = Field(
        default=None,
        description="Last error opening or reading the video source (kept after it recovers; "
        "source_state says whether it still holds)",
    )


class AgentStatus(Record):
    """Published retained on ``status`` (with a will saying ``offline``) and on ``heartbeat``.

    ``stats`` is null in the will message, which the broker sends on the agent's behalf.
    """

    schema_version: SchemaVersion1 = Field(description="Version of this contract")
    site: SafeId
    spot: SafeId
    agent: SafeId
    state: AgentState = Field(description="online or offline")
    sent_at: UtcTimestamp = Field(
        description="When the agent made this message, on the clock of its events: the wall "
        "clock for a live source; for a recorded clip, the time its footage had reached"
    )
    software_version: ShortText = Field(description="Version of the agent software")
    config_version: ShortText | None = Field(description="Version of the applied configuration")
    models: list[ModelRef] = Field(max_length=8, description="Models loaded by the agent")
    stats: AgentStats | None = Field(description="Counters; null in the will message")
    last_error: Note | None = Field(default=None, description="Last error the agent reported")
