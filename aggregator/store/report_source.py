"""The store as the workbook reads it: :class:`aggregator.report.source.ReportSource` over an
:class:`EventStore`, so the workbook and the nightly delivery can run on live data."""

from collections.abc import Iterator
from datetime import datetime

import pandas as pd

from aggregator.report.source import EVENT_COLUMNS, AgentInfo, ReportSource, event_frame
from aggregator.shares.registry import ModelCalibration, parse
from aggregator.store.coverage import Interval
from aggregator.store.spot_calibrations import SpotCalibrationsTable
from aggregator.store.store import EventStore


class StoreReportSource(ReportSource):
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def iter_event_frames(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        for columns in self.store.iter_event_columns(
            site, start_utc, end_utc, batch_size, columns=EVENT_COLUMNS
        ):
            yield event_frame(columns)

    def coverage_intervals(
        self, site: str, start_utc: datetime, end_utc: datetime
    ) -> dict[str, list[Interval]] | None:
        # None means "no status information at all" (e.g. a site made of replayed clips): the
        # workbook then ranks by people instead of showing zero hours of coverage.
        if not self.store.agents(site):
            return None
        return self.store.coverage_intervals(site, start_utc, end_utc)

    def count_dead_letters(self, site: str, start_utc: datetime, end_utc: datetime) -> int:
        return self.store.count_dead_letters(site, start_utc, end_utc)

    def agents(self, site: str) -> list[AgentInfo]:
        return [
            AgentInfo(
                agent=a.agent,
                spot=a.spot,
                # The agent's own clock: for a recorded clip, the end of its footage rather than
                # the moment the survey stored it.
                last_seen=a.last_sent_at,
                state=a.state.value,
                software_version=a.software_version,
                config_version=a.config_version,
                models=", ".join(f"{m.name} {m.version}" for m in a.models) or None,
            )
            for a in self.store.agents(site)
        ]

    def spot_calibrations(self, site: str) -> dict[tuple[str, str], ModelCalibration]:
        return {
            (row.spot, row.role): parse(row.record)
            for row in SpotCalibrationsTable(self.store.engine).for_site(site)
        }
