"""Building one site's workbook for one period.

Sheets, in order: Summary (one row per spot, ranked), Charts (native Excel charts and their data),
Age mix (each spot's age groups with their 95 % intervals, counted shares and people), Week (a
weekday x hour heat map, for periods of several days), one sheet per spot (person list with
frozen header and autofilter, and the hour x gender x age table to its right, without its all-zero
columns), About (site, period, time zone, versions, agents, counts, notes). Every sheet prints
landscape, fit to the page's width. This module reads the events and writes the spot sheets; the
Summary, Charts, Age mix and About sheets have a module each
(:mod:`~aggregator.report.summary_sheet`, :mod:`~aggregator.report.charts`,
:mod:`~aggregator.report.age_mix_sheet`, :mod:`~aggregator.report.about`), and the formats and
styles they share are in :mod:`~aggregator.report.cells`.

Past Excel's 1,048,576 rows, a spot's person list continues on sheets named "<spot> (2)", "<spot>
(3)", ...; nothing is dropped and the Summary counts every person regardless.

The first people with a face crop on each person-list sheet get a small picture of it
(:mod:`~aggregator.report.thumbnails`, drawn by :mod:`~aggregator.report.drawing`), and the person
lists are also written beside the workbook as CSV and Parquet (:mod:`~aggregator.report.exports`).
"""

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook

from aggregator.report.about import write_about
from aggregator.report.age_mix_sheet import write_age_mix
from aggregator.report.bulk_sheet import (
    Column,
    PersonListWriter,
    PictureColumn,
    Styles,
    column_letter,
    render_cells,
    write_sheet,
)
from aggregator.report.cells import (
    DATETIME_FORMAT,
    DECIMAL_FORMAT,
    PERCENT_FORMAT,
    QUALITY_FORMAT,
    register_styles,
)
from aggregator.report.charts import write_charts, write_week
from aggregator.report.drawing import DRAWING_REL_ID, SheetPictures
from aggregator.report.excel_text import SheetNames, xml_text
from aggregator.report.exports import PersonExports
from aggregator.report.package import save_with_streamed_sheets
from aggregator.report.period import ReportPeriod
from aggregator.report.source import ReportSource
from aggregator.report.summary import SpotSummary, summarize
from aggregator.report.summary_sheet import write_summary
from aggregator.report.tally import AGE_BANDS, GENDERS, SiteTally
from aggregator.report.thumbnails import (
    DEFAULT_PER_SHEET,
    PICTURE_COLUMN_WIDTH,
    PICTURE_ROW_HEIGHT,
    CropReader,
    PersonPictures,
)
from footfall.contract import Gender

log = logging.getLogger(__name__)

PERSON_COLUMNS: tuple[Column, ...] = (
    Column("Event id", "event_id", "text", 38),
    Column("Local time", "_local", "datetime", 20, DATETIME_FORMAT),
    Column("Direction", "direction", "text", 10),
    Column("Entry side", "entry_side", "text", 10),
    Column("Exit side", "exit_side", "text", 10),
    Column("Gender", "gender", "text", 9),
    Column("Gender confidence", "gender_confidence", "number", 11, PERCENT_FORMAT, nullable=True),
    Column("Age group", "age_group", "text", 10),
    Column(
        "Age estimate (years)", "age_years", "number", 11, DECIMAL_FORMAT, decimals=1, nullable=True
    ),
    Column("Dwell (s)", "dwell_seconds", "number", 9, DECIMAL_FORMAT, decimals=1),
    Column("Face quality", "face_quality", "number", 9, QUALITY_FORMAT, nullable=True),
    Column("Agent", "agent", "text", 14),
    Column("Track", "track_id", "integer", 8),
    Column("Crop", "crop_key", "link", 60, nullable=True),
    Column("Note", "crop_note", "free_text", 30, nullable=True),
)
# The face pictures sit in the spacer column between the person list and the hourly table.
PICTURE_COLUMN = PictureColumn(
    len(PERSON_COLUMNS) + 1, "Face", PICTURE_COLUMN_WIDTH, PICTURE_ROW_HEIGHT, DRAWING_REL_ID
)
GENDER_TITLES = {Gender.FEMALE: "Women", Gender.MALE: "Men", Gender.UNKNOWN: "Gender unknown"}


@dataclass(frozen=True)
class SiteReportInfo:
    id: str
    name: str | None
    timezone: str


@dataclass(frozen=True)
class ReportOptions:
    batch_size: int = 50_000
    crop_link_base: str | None = None  # e.g. "crops/" (a local folder) or an https base URL
    generated_at: datetime | None = None
    tmpdir: Path | None = None
    max_rows_per_sheet: int = 1_048_575  # data rows; one more row is the header
    crop_reader: CropReader | None = None  # where face pictures come from; none without it
    pictures_per_sheet: int = DEFAULT_PER_SHEET  # then only links
    exports: bool = True  # the person list as CSV and Parquet beside the workbook
    # The period had not ended when the workbook was made: its data runs up to this instant.
    partial_until: datetime | None = None


@dataclass
class WorkbookResult:
    path: Path
    site: str
    period: ReportPeriod
    people: int
    spots: list[SpotSummary]
    sheets: list[str] = field(default_factory=list)
    dead_letters: int = 0
    empty_reason: str | None = None
    exports: list[Path] = field(default_factory=list)
    pictures: int = 0
    crops_missing: int = 0  # chosen for a picture but not found or not readable
    partial_until: datetime | None = None  # ReportOptions.partial_until: data up to then


def build_site_workbook(
    source: ReportSource,
    site: SiteReportInfo,
    period: ReportPeriod,
    out_path: Path,
    options: ReportOptions | None = None,
) -> WorkbookResult:
    """Read the site's events for ``period`` from ``source`` and write the workbook."""
    options = options or ReportOptions()
    generated = options.generated_at or datetime.now(UTC)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = options.tmpdir or out_path.parent
    with tempfile.TemporaryDirectory(prefix=".report-", dir=tmp_root) as work:
        workdir = Path(work)
        wb = Workbook()
        styles = register_styles(wb)
        tally = SiteTally(period)
        slots = period.slot_labels()
        writers: dict[str, PersonListWriter] = {}
        pictures = PersonPictures(
            options.crop_reader, options.pictures_per_sheet, options.max_rows_per_sheet
        )
        exports = PersonExports(out_path, PERSON_COLUMNS) if options.exports else None
        export_paths: list[Path] = []
        try:
            for frame in source.iter_event_frames(
                site.id, period.start_utc, period.end_utc, options.batch_size
            ):
                inside = tally.add(frame)
                if inside.empty:
                    continue
                inside = inside.assign(_local=period.to_local_naive(inside["first_seen"]))
                if exports is not None:
                    exports.append(inside)
                for spot, part in inside.groupby("spot", sort=False):
                    writer = writers.get(str(spot))
                    if writer is None:
                        writer = PersonListWriter(
                            workdir, len(slots) + 1, options.max_rows_per_sheet, PICTURE_ROW_HEIGHT
                        )
                        writers[str(spot)] = writer
                    tall = pictures.add(
                        str(spot),
                        writer.total,
                        part["crop_key"].tolist(),
                        part["event_id"].tolist(),
                    )
                    writer.append(
                        render_cells(part, PERSON_COLUMNS, styles, options.crop_link_base), tall
                    )
            coverage = source.coverage_intervals(site.id, period.start_utc, period.end_utc)
            agents = source.agents(site.id)
            dead = source.count_dead_letters(site.id, period.start_utc, period.end_utc)
            summaries = summarize(
                tally,
                coverage,
                {a.spot for a in agents},
                calibrations=source.spot_calibrations(site.id),
            )
            empty_reason = (
                _empty_reason(tally, summaries, coverage, dead) if tally.events == 0 else None
            )

            names = SheetNames()
            summary_ws = wb.active
            assert summary_ws is not None
            summary_ws.title = names.take("Summary")
            charts_ws = wb.create_sheet(names.take("Charts"))
            age_ws = wb.create_sheet(names.take("Age mix"))
            week_ws = None if period.single_day else wb.create_sheet(names.take("Week"))
            about_title = names.take("About")  # reserved before spots can take the name
            streamed: dict[str, Any] = {}
            sheet_pictures: dict[str, SheetPictures] = {}
            spot_sheets: list[str] = []
            title = f"{site.name or site.id} - {period.describe()}"
            for s in summaries:
                writer = writers.get(s.spot) or PersonListWriter(workdir, len(slots) + 1)
                for n, part in enumerate(writer.parts):
                    sheet = names.take(s.spot if n == 0 else f"{s.spot} ({n + 1})")
                    placeholder = wb.create_sheet(sheet)
                    placeholder.print_title_rows = "1:1"
                    # The person list and its faces are what prints; the hour table beside
                    # them would shrink the page to unreadable.
                    placeholder.print_area = (
                        f"A1:{column_letter(PICTURE_COLUMN.column)}{max(part.rows, 1) + 1}"
                    )
                    side = _hourly_table_cells(tally, s.spot, slots, styles) if n == 0 else None
                    pics = pictures.for_sheet(s.spot, n)
                    if pics:
                        sheet_pictures[sheet] = SheetPictures(PICTURE_COLUMN.column - 1, pics)
                    streamed[sheet] = _sheet_writer(
                        part, styles, side, title, PICTURE_COLUMN if pics else None
                    )
                    spot_sheets.append(sheet)
            about_ws = wb.create_sheet(about_title)

            write_summary(
                summary_ws, summaries, period, slots, coverage is not None, empty_reason, title
            )
            write_charts(charts_ws, summaries, tally, coverage, title)
            write_age_mix(age_ws, summaries, title)
            if week_ws is not None:
                write_week(week_ws, tally, period, title)
            write_about(
                title,
                about_ws,
                site.id,
                site.name,
                period,
                generated,
                tally,
                summaries,
                agents,
                dead,
                empty_reason,
                options.partial_until,
            )
            save_with_streamed_sheets(wb, streamed, out_path, workdir, sheet_pictures)
            if exports is not None:
                export_paths = exports.publish()
        finally:
            for writer in writers.values():
                writer.close()
            pictures.close()
            if exports is not None and not export_paths:
                exports.discard()
    if pictures.missing:
        log.warning(
            "%s: %d face crop(s) could not be read; their rows keep the link",
            out_path,
            pictures.missing,
        )
    log.debug("wrote %s: %d people at %d spots", out_path, tally.events, len(summaries))
    return WorkbookResult(
        path=out_path,
        site=site.id,
        period=period,
        people=tally.events,
        spots=summaries,
        sheets=[
            summary_ws.title,
            charts_ws.title,
            age_ws.title,
            *([week_ws.title] if week_ws is not None else []),
            *spot_sheets,
            about_ws.title,
        ],
        dead_letters=dead,
        empty_reason=empty_reason,
        exports=export_paths,
        pictures=pictures.embedded,
        crops_missing=pictures.missing,
        partial_until=options.partial_until,
    )


def _sheet_writer(
    part: Any,
    styles: Styles,
    side: tuple[list[str], list[float], int] | None,
    title: str,
    pictures: PictureColumn | None,
) -> Any:
    def write(out: IO[bytes]) -> None:
        if side is None:
            write_sheet(out, part, PERSON_COLUMNS, styles, title=title, pictures=pictures)
        else:
            rows, widths, first_col = side
            write_sheet(out, part, PERSON_COLUMNS, styles, rows, widths, first_col, title, pictures)

    return write


def _hourly_table_cells(
    tally: SiteTally, spot: str, slots: list[str], styles: Styles
) -> tuple[list[str], list[float], int]:
    """Rows of the hour x gender x age table placed right of the person list (explicit refs).

    Only the gender x age columns with someone in them: a quiet spot's 27 columns of zeros would
    hide the few that matter and spread the sheet over pages."""
    first = len(PERSON_COLUMNS) + 2
    all_counts = tally.spots[spot].counts if spot in tally.spots else None
    names = [f"{GENDER_TITLES[g]} {a.value}" for g in GENDERS for a in AGE_BANDS]
    if all_counts is None:
        keep: list[int] = []
    else:
        flat = all_counts.reshape(all_counts.shape[0], -1)
        keep = [i for i in range(flat.shape[1]) if flat[:, i].any()]
    headers = ["Hour"] + [names[i] for i in keep] + ["Total"]
    counts = None if all_counts is None else all_counts.reshape(all_counts.shape[0], -1)[:, keep]
    rows = [
        "".join(
            f'<c r="{column_letter(first + i)}1" t="inlineStr" s="{styles.header}"><is><t>{xml_text(h)}</t></is></c>'
            for i, h in enumerate(headers)
        )
    ]
    for k, label in enumerate([*slots, "Total"]):
        r = k + 2
        if counts is None:
            values = [0] * (len(headers) - 2)
        elif k < len(slots):
            values = counts[k].reshape(-1).tolist()
        else:
            values = counts.sum(axis=0).reshape(-1).tolist()
        cells = [
            f'<c r="{column_letter(first)}{r}" t="inlineStr"><is><t>{xml_text(label)}</t></is></c>'
        ]
        cells += [
            f'<c r="{column_letter(first + 1 + i)}{r}"><v>{v}</v></c>' for i, v in enumerate(values)
        ]
        cells.append(
            f'<c r="{column_letter(first + len(headers) - 1)}{r}"><v>{sum(values)}</v></c>'
        )
        rows.append("".join(cells))
    # Wide enough for the longest word of a header ("Gender unknown 60-100" wraps to two lines).
    widths = [14.0] + [max(9.0, 1.1 * max(len(w) for w in h.split()) + 2) for h in headers[1:]]
    return rows, widths, first


def _empty_reason(
    tally: SiteTally,
    summaries: list[SpotSummary],
    coverage: dict[str, list[tuple[datetime, datetime]]] | None,
    dead_letters: int,
) -> str:
    rejected = (
        f" {dead_letters} message(s) were rejected as invalid (see dead letters)."
        if dead_letters
        else ""
    )
    if coverage is None or not any(coverage.values()):
        return (
            "no events were stored for this site in this period and no agent reported being online; "
            "the cameras were off, not connected, or not yet deployed." + rejected
        )
    hours = sum(s.coverage_hours or 0.0 for s in summaries)
    return (
        f"agents were online for {hours:.1f} hours in total but recorded no people "
        "(check the camera view and the detector settings)." + rejected
    )
