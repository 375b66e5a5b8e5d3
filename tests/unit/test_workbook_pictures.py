"""A face picture per person in the person lists: crop files in a folder, embedded as drawings the
package declares properly, bounded per sheet, none without crops."""

import sys
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from openpyxl import load_workbook

from aggregator.delivery.crops import StoreCropReader
from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.thumbnails import (
    FolderCropReader,
    PersonPictures,
    jpeg_dimensions,
    make_thumbnail,
)
from aggregator.report.workbook import (
    PERSON_COLUMNS,
    ReportOptions,
    SiteReportInfo,
    WorkbookResult,
    build_site_workbook,
)
from footfall.contract import PersonEvent
from footfall.contract.examples import example_event
from footfall.objectstore import MemoryObjectStore, ObjectStoreError
from tests.workbook_pictures import pictures_of, sheet_parts

SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
DAY = date(2026, 5, 4)
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
PICTURE_COL = len(PERSON_COLUMNS) + 1  # the spacer column before the hourly table


def _events(
    n: int, spot: str = "north", without_crop: frozenset[int] = frozenset()
) -> list[PersonEvent]:
    return [
        example_event(
            spot=spot,
            track_id=i + 1,
            first_seen=T0 + timedelta(minutes=i),
            with_crop=i not in without_crop,
        )
        for i in range(n)
    ]


def _crop_jpeg(width: int = 100, height: int = 128) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return bytes(buf.tobytes())


def _write_crops(root: Path, events: list[PersonEvent], skip: frozenset[int] = frozenset()) -> None:
    for i, e in enumerate(events):
        if e.crop is not None and i not in skip:
            path = root / e.crop.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_crop_jpeg())


def _build(tmp_path: Path, events: list[PersonEvent], **options: object) -> WorkbookResult:
    crops = tmp_path / "crops"
    return build_site_workbook(
        EventListSource(events),
        SITE,
        ReportPeriod.day(DAY, SITE.timezone),
        tmp_path / "site-a.xlsx",
        ReportOptions(crop_link_base="crops/", crop_reader=FolderCropReader(crops), **options),  # type: ignore[arg-type]
    )


def test_people_with_a_crop_get_a_picture_in_their_own_row(tmp_path: Path) -> None:
    # Person 3 has no crop (dropped or never seen); person 5's file is missing.
    events = _events(7, without_crop=frozenset({3}))
    _write_crops(tmp_path / "crops", events, skip=frozenset({5}))
    result = _build(tmp_path, events)
    assert (result.pictures, result.crops_missing) == (5, 1)

    wb = load_workbook(result.path)
    ws = wb["north"]
    assert ws.cell(1, PICTURE_COL).value == "Face"
    found = pictures_of(result.path, "north")
    # One picture per person with a crop, in that person's row, downscaled to 48 px high.
    rows_with_picture = [p.row for p in found]
    expected_ids = [str(e.event_id) for i, e in enumerate(events) if i not in (3, 5)]
    assert [ws.cell(r, 1).value for r in rows_with_picture] == expected_ids
    assert {p.column for p in found} == {PICTURE_COL}
    assert {(p.width, p.height) for p in found} == {(38, 48)}
    for r in range(2, 9):
        height = ws.row_dimensions[r].height
        assert height == (40 if r in rows_with_picture else None), r
    # The missing crop's row keeps its link; the row without a crop has none.
    missing_row = 2 + 5
    assert events[5].crop is not None and events[5].crop.key in str(ws.cell(missing_row, 14).value)
    assert ws.cell(2 + 3, 14).value is None
    # openpyxl's own drawing (the charts) is intact next to the added one.
    assert len(wb["Charts"]._charts) >= 1
    with zipfile.ZipFile(result.path) as z:
        types = z.read("[Content_Types].xml").decode()
        assert 'Extension="jpeg" ContentType="image/jpeg"' in types
        drawings = [n for n in z.namelist() if n.startswith("xl/drawings/drawing")]
        for name in drawings:
            assert f'PartName="/{name}"' in types
        assert len(drawings) == 2  # charts + north
        assert len([n for n in z.namelist() if n.startswith("xl/media/")]) == 5


def test_pictures_are_bounded_per_sheet_then_only_links(tmp_path: Path) -> None:
    events = _events(12)
    _write_crops(tmp_path / "crops", events)
    result = _build(tmp_path, events, pictures_per_sheet=3, max_rows_per_sheet=5)
    assert result.sheets[3:6] == ["north", "north (2)", "north (3)"]
    assert result.pictures == 3 + 3 + 2
    for title in ("north", "north (2)"):
        assert [p.row for p in pictures_of(result.path, title)] == [2, 3, 4]
    assert [p.row for p in pictures_of(result.path, "north (3)")] == [2, 3]
    ws = load_workbook(result.path)["north (2)"]
    assert ws.row_dimensions[5].height is None and ws.cell(5, 14).value is not None  # link only


def test_a_long_list_spills_to_disk_and_keeps_its_pictures(tmp_path: Path) -> None:
    # More rows than are kept in memory (the hourly table's 25): the later pictures' rows are
    # written to the temporary body file and must still be tall.
    events = _events(40, without_crop=frozenset(range(0, 30)))
    _write_crops(tmp_path / "crops", events)
    result = _build(tmp_path, events)
    found = pictures_of(result.path, "north")
    assert [p.row for p in found] == list(range(32, 42))
    ws = load_workbook(result.path)["north"]
    assert [r for r in range(2, 42) if ws.row_dimensions[r].height == 40] == list(range(32, 42))


@pytest.mark.parametrize("per_sheet", [2000, 0])
def test_no_pictures_when_crops_are_dropped_or_pictures_off(tmp_path: Path, per_sheet: int) -> None:
    with_crops = per_sheet == 0  # pictures off: crops there but not embedded
    events = _events(4, without_crop=frozenset() if with_crops else frozenset(range(4)))
    _write_crops(tmp_path / "crops", events)
    result = _build(tmp_path, events, pictures_per_sheet=per_sheet)
    assert (result.pictures, result.crops_missing) == (0, 0)
    assert pictures_of(result.path, "north") == []
    ws = load_workbook(result.path)["north"]
    assert ws.cell(1, PICTURE_COL).value is None
    with zipfile.ZipFile(result.path) as z:
        assert not [n for n in z.namelist() if n.startswith("xl/media/")]
        assert (
            "xl/worksheets/_rels/" + sheet_parts(z)["north"].rpartition("/")[2] + ".rels"
            not in z.namelist()
        )


def test_a_crop_that_is_not_a_jpeg_is_counted_not_fatal(tmp_path: Path) -> None:
    events = _events(2)
    _write_crops(tmp_path / "crops", events)
    assert events[1].crop is not None
    (tmp_path / "crops" / events[1].crop.key).write_bytes(b"not a picture")
    result = _build(tmp_path, events)
    assert (result.pictures, result.crops_missing) == (1, 1)


def test_thumbnail_keeps_the_aspect_and_never_enlarges() -> None:
    big = make_thumbnail(_crop_jpeg(100, 128))
    assert big is not None and (big.width, big.height) == (38, 48)
    assert jpeg_dimensions(big.jpeg) == (38, 48)
    small = make_thumbnail(_crop_jpeg(30, 20))
    assert small is not None and (small.width, small.height) == (30, 20)
    assert make_thumbnail(b"\xff\xd8garbage") is None
    assert jpeg_dimensions(b"GIF89a") is None


def test_folder_reader_stays_inside_its_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (tmp_path / "crops").mkdir()
    reader = FolderCropReader(tmp_path / "crops")
    assert reader.read("../secret.jpg") is None
    assert reader.read("site-a/none.jpg") is None


def test_person_pictures_validates_its_bounds() -> None:
    with pytest.raises(ValueError, match="per_sheet must be >= 0, got -1"):
        PersonPictures(None, -1, 10)
    with pytest.raises(ValueError, match="rows_per_sheet must be >= 1, got 0"):
        PersonPictures(None, 1, 0)


class _DownStore(MemoryObjectStore):
    """An object store that refuses every read, as one that cannot be reached."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_bytes(self, key: str) -> bytes:
        self.reads += 1
        raise ObjectStoreError(f"get s3://bucket/{key}: connection refused")

    def head(self, key: str) -> None:
        raise ObjectStoreError(f"head s3://bucket/{key}: connection refused")


def test_store_reader_tells_missing_from_unreachable_and_gives_up() -> None:
    store = MemoryObjectStore()
    store.put_bytes("a.jpg", b"jpeg", content_type="image/jpeg")
    reader = StoreCropReader(store, give_up_after=3)
    assert reader.read("a.jpg") == b"jpeg"
    assert [reader.read("missing.jpg") for _ in range(5)] == [None] * 5
    assert (reader.not_found, reader.errors, reader.gave_up) == (5, 0, False)

    down = _DownStore()
    reader = StoreCropReader(down, give_up_after=3)
    assert [reader.read(f"{i}.jpg") for i in range(10)] == [None] * 10
    assert (reader.errors, reader.gave_up, down.reads) == (3, True, 3)


def test_without_opencv_the_crop_is_embedded_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # The aggregator extra does not install OpenCV: the crop goes in unchanged, shown at 48 px.
    jpeg = _crop_jpeg(100, 128)
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    thumb = make_thumbnail(jpeg)
    assert thumb is not None and thumb.jpeg == jpeg and (thumb.width, thumb.height) == (38, 48)
    assert make_thumbnail(b"\xff\xd8\xff\xd9") is None
