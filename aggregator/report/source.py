"""What the workbook reads: the :class:`ReportSource` protocol and the event frame it yields.

The store implements it; tests use :class:`EventListSource`. Events arrive as pandas frames in
batches, ordered by ``first_seen``, so a site-day of a million events never sits in memory at once.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from aggregator.event_columns import AGE_PROBABILITY_COLUMNS, event_columns, row_function
from aggregator.shares.registry import ModelCalibration
from footfall.contract import PersonEvent

# Columns of every event frame, in this order; what each holds is declared in
# aggregator.event_columns. Times are tz-aware UTC; missing numbers are NaN; enums are their text
# and models JSON text ([{"role", "name", "version"}, ...]).
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "spot",
    "agent",
    "track_id",
    "first_seen",
    "last_seen",
    "dwell_seconds",
    "direction",
    "entry_side",
    "exit_side",
    "gender",
    "gender_confidence",
    "age_group",
    "age_years",
    *AGE_PROBABILITY_COLUMNS.values(),
    "face_quality",
    "crop_key",
    "crop_note",
    "models",
)
_COLUMNS = event_columns(EVENT_COLUMNS)
_TIMES = tuple(c.name for c in _COLUMNS if c.type.kind == "timestamp")
_FLOATS = tuple(c.name for c in _COLUMNS if c.type.kind == "float")
_event_values = row_function(_COLUMNS, stored=False, convert={"uuid": str})


def event_frame(columns: Mapping[str, list[Any]] | list[tuple[Any, ...]]) -> pd.DataFrame:
    """An event frame from the values of :data:`EVENT_COLUMNS`, by column or by row."""
    if isinstance(columns, list):
        frame = pd.DataFrame.from_records(columns, columns=list(EVENT_COLUMNS))
    else:
        frame = pd.DataFrame(columns, columns=list(EVENT_COLUMNS))
    for name in _TIMES:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    for name in _FLOATS:
        frame[name] = frame[name].astype("float64")
    return frame


@dataclass(frozen=True)
class AgentInfo:
    """What the store knows about an agent, for the About sheet and coverage."""

    agent: str
    spot: str
    last_seen: datetime | None
    state: str | None
    software_version: str | None
    config_version: str | None
    models: str | None  # e.g. "yunet 2023mar, cydral-gender 1, cydral-age 1"


class ReportSource:
    """Protocol of the store as the workbook sees it (a class for a readable signature list)."""

    def iter_event_frames(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        """Events with ``start_utc <= first_seen < end_utc``, ordered by first_seen, in frames
        with :data:`EVENT_COLUMNS`."""
        raise NotImplementedError

    def coverage_intervals(
        self, site: str, start_utc: datetime, end_utc: datetime
    ) -> dict[str, list[tuple[datetime, datetime]]] | None:
        """Per spot, the intervals its agent was online, clipped to the period; ``None`` when
        the store has no status information at all for the site (e.g. replayed clips)."""
        raise NotImplementedError

    def count_dead_letters(self, site: str, start_utc: datetime, end_utc: datetime) -> int:
        raise NotImplementedError

    def agents(self, site: str) -> list[AgentInfo]:
        raise NotImplementedError

    def spot_calibrations(self, site: str) -> dict[tuple[str, str], ModelCalibration]:
        """(spot, role) -> the site calibration an operator fitted for it; none by default."""
        return {}


def events_to_frame(events: Iterable[PersonEvent]) -> pd.DataFrame:
    """Flatten contract events into an event frame (used by tests and the embedded mode)."""
    return event_frame([_event_values(e) for e in events])


@dataclass
class EventListSource(ReportSource):
    """A :class:`ReportSource` over events in memory."""

    events: list[PersonEvent]
    coverage: dict[str, list[tuple[datetime, datetime]]] | None = None
    dead_letters: int = 0
    agent_infos: list[AgentInfo] = field(default_factory=list)
    calibrations: dict[tuple[str, str], ModelCalibration] = field(default_factory=dict)

    def iter_event_frames(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        chosen = sorted(
            (e for e in self.events if e.site == site and start_utc <= e.first_seen < end_utc),
            key=lambda e: e.first_seen,
        )
        for i in range(0, len(chosen), batch_size):
            yield events_to_frame(chosen[i : i + batch_size])

    def coverage_intervals(
        self, site: str, start_utc: datetime, end_utc: datetime
    ) -> dict[str, list[tuple[datetime, datetime]]] | None:
        if self.coverage is None:
            return None
        return {
            spot: [
                (max(a, start_utc), min(b, end_utc))
                for a, b in spans
                if b > start_utc and a < end_utc
            ]
            for spot, spans in self.coverage.items()
        }

    def count_dead_letters(self, site: str, start_utc: datetime, end_utc: datetime) -> int:
        return self.dead_letters

    def agents(self, site: str) -> list[AgentInfo]:
        return self.agent_infos

    def spot_calibrations(self, site: str) -> dict[tuple[str, str], ModelCalibration]:
        return self.calibrations
