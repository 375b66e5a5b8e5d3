"""The embedded mode: recorded clips of several spots through the real pipeline into an
in-process aggregator (SQLite store, crops in a local folder), then the site workbooks.

This is the laptop path of an investor who films candidate spots and processes them later, and
the project's demo. A clip whose agent configuration names a broker (``[mqtt]``, and ``[s3]`` for
crops) is published to the fleet instead, through that agent's durable outbox, and counted in the
cloud aggregator's workbooks rather than the local one. Events take the same road as live ones (contract validation, the store's
idempotent insert), so the workbook cannot tell a replayed day from a live one. Each clip also
records when its camera was watching (an online status, a heartbeat every ``heartbeat`` of
stream time, an offline status at the end), so spots filmed for different lengths are ranked by
people per hour of footage rather than by raw counts.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator.intake import Inbound, classify
from aggregator.report.period import ReportPeriod
from aggregator.report.thumbnails import FolderCropReader
from aggregator.report.workbook import (
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from aggregator.store import EventStore, StatusRecord, WriteBatch
from aggregator.store.report_source import StoreReportSource
from edge_agent.clips import ClipSpec
from edge_agent.config import AgentConfig
from edge_agent.process import ClipResult, config_for_clip, process_clips
from footfall import __version__
from footfall.contract import (
    MAX_EVENT_BYTES,
    SCHEMA_VERSION,
    AgentState,
    AgentStatus,
    Channel,
    PersonEvent,
)

log = logging.getLogger(__name__)

HEARTBEAT = timedelta(seconds=30)


class SinkError(Exception):
    pass


class StoreSink:
    """An :class:`edge_agent.vision.sinks.EventSink` that is an aggregator: each event is validated
    against the contract and committed to the store, its crop written (and fsynced) under
    ``crops_dir/<crop key>`` first."""

    def __init__(self, store: EventStore, crops_dir: Path, source: str = "embedded") -> None:
        self.store = store
        self.crops_dir = crops_dir
        self.source = source
        self.stored = 0
        self.rejected = 0

    def emit(self, event: PersonEvent, crop_jpeg: bytes | None) -> None:
        if event.crop is not None and crop_jpeg is not None:
            path = self.crops_dir / event.crop.key
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as fh:
                fh.write(crop_jpeg)
                fh.flush()
                os.fsync(fh.fileno())
        message = Inbound(None, event.to_json(), datetime.now(UTC), self.source)
        classified = classify(
            [message], prefix="", max_payload_bytes=MAX_EVENT_BYTES, keep_bytes=4096
        )
        result = self.store.write(classified.batch)
        if classified.rejected or result.events_conflict:
            # The pipeline made an event the contract refuses (or, impossibly with random ids,
            # one under an id already taken): it is in the dead letters now.
            self.rejected += 1
            reasons = dict(classified.rejected) or {"conflict": result.events_conflict}
            log.error("event %s rejected: %s", event.event_id, reasons)
        else:
            self.stored += 1

    def close(self) -> None:
        pass


def coverage_statuses(result: ClipResult, config: AgentConfig, now: datetime) -> list[StatusRecord]:
    """What the clip's camera would have said while filming: online, heartbeats, offline."""
    start = result.clip.start.astimezone(UTC)
    end = start + timedelta(seconds=result.video_seconds)
    agent = result.clip.agent or config.agent

    def status(state: AgentState, at: datetime) -> AgentStatus:
        return AgentStatus(
            schema_version=SCHEMA_VERSION,
            site=result.clip.site,
            spot=result.clip.spot,
            agent=agent,
            state=state,
            sent_at=at,
            software_version=__version__,
            config_version=config.config_version,
            models=[],
            stats=None,
        )

    records = [StatusRecord(Channel.STATUS, status(AgentState.ONLINE, start), now)]
    at = start + HEARTBEAT
    while at < end:
        records.append(StatusRecord(Channel.HEARTBEAT, status(AgentState.ONLINE, at), now))
        at += HEARTBEAT
    records.append(StatusRecord(Channel.HEARTBEAT, status(AgentState.ONLINE, end), now))
    records.append(StatusRecord(Channel.STATUS, status(AgentState.OFFLINE, end), end))
    return records


@dataclass
class SurveyResult:
    clips: list[ClipResult]
    workbooks: list[WorkbookResult] = field(default_factory=list)
    store_url: str = ""
    crops_dir: Path | None = None

    @property
    def ok(self) -> bool:
        """Every clip was processed to its end. A clip that stopped decoding early still counts
        in the workbook for the footage before the damage (its coverage is what was decoded),
        but the survey is not ok."""
        return all(c.ok for c in self.clips)


def run_survey(
    clips: list[ClipSpec],
    out_dir: Path,
    *,
    timezone: str = "UTC",
    site_names: dict[str, str] | None = None,
    config: AgentConfig | None = None,
    models_dir: Path | None = None,
    progress: bool = True,
    on_result: Callable[[ClipResult], None] | None = None,
    spot_configs: Mapping[str, AgentConfig] | None = None,
) -> SurveyResult:
    """Process ``clips`` into ``out_dir`` (``footfall.db``, ``crops/``) and write one workbook per
    site, ``<site>.xlsx``, covering the local days the clips span in ``timezone``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    crops = out_dir / "crops"
    store = EventStore.open(f"sqlite:///{out_dir / 'footfall.db'}")
    try:
        sink = StoreSink(store, crops)
        results = process_clips(
            clips,
            config,
            sink,
            models_dir=models_dir,
            progress=progress,
            on_result=on_result,
            spot_configs=spot_configs,
            publish=True,
        )
        now = datetime.now(UTC)
        store.write(
            WriteBatch(
                statuses=[
                    record
                    for r in results
                    if r.processed and r.frames and not r.published
                    for record in coverage_statuses(
                        r,
                        config_for_clip((spot_configs or {}).get(r.clip.spot, config), r.clip),
                        now,
                    )
                ]
            )
        )
        survey = SurveyResult(results, store_url=store.url, crops_dir=crops)
        tz = ZoneInfo(timezone)
        for site in sorted({c.site for c in clips}):
            days = _days(results, site, tz)
            if days is None:
                continue
            info = SiteReportInfo(site, (site_names or {}).get(site), timezone)
            survey.workbooks.append(
                build_site_workbook(
                    StoreReportSource(store),
                    info,
                    ReportPeriod(tz, *days),
                    out_dir / f"{site}.xlsx",
                    ReportOptions(crop_link_base="crops/", crop_reader=FolderCropReader(crops)),
                )
            )
        return survey
    finally:
        store.close()


def _days(results: list[ClipResult], site: str, tz: ZoneInfo) -> tuple[date, date] | None:
    spans = [
        (r.clip.start, r.clip.start + timedelta(seconds=r.video_seconds))
        for r in results
        if r.clip.site == site and r.processed and not r.published
    ]
    if not spans:
        return None
    return min(a for a, _ in spans).astimezone(tz).date(), max(b for _, b in spans).astimezone(
        tz
    ).date()
