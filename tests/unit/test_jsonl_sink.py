"""The JSON-lines folder sink: format, crops beside events, torn writes, one writer."""

import hashlib
from pathlib import Path

import pytest

from edge_agent.delivery.jsonl_sink import EVENTS_FILE, JsonlFolderSink, SinkError, read_events
from footfall.contract import ContractError, CropRef, PersonEvent, decode
from footfall.contract.examples import example_event

JPEG = b"\xff\xd8fake jpeg bytes\xff\xd9"


def _with_crop(event: PersonEvent, data: bytes = JPEG) -> PersonEvent:
    assert event.crop is not None
    crop = CropRef(
        key=event.crop.key, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
    )
    return event.model_copy(update={"crop": crop})


def test_events_and_crops_round_trip(tmp_path: Path) -> None:
    first = _with_crop(example_event(track_id=1))
    second = example_event(track_id=2, with_crop=False)
    sink = JsonlFolderSink(tmp_path)
    sink.emit(first, JPEG)
    sink.emit(second, None)
    sink.close()
    lines = (tmp_path / EVENTS_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert decode(PersonEvent, lines[0]) == first
    assert first.crop is not None
    assert (tmp_path / "crops" / first.crop.key).read_bytes() == JPEG
    stored = list(read_events(tmp_path))
    assert [s.event for s in stored] == [first, second]
    assert stored[0].crop_path == tmp_path / "crops" / first.crop.key
    assert stored[1].crop_path is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_appends_across_runs(tmp_path: Path) -> None:
    for track in (1, 2):
        sink = JsonlFolderSink(tmp_path)
        sink.emit(example_event(track_id=track, with_crop=False), None)
        sink.close()
    assert [s.event.track_id for s in read_events(tmp_path)] == [1, 2]


def test_torn_last_line_is_skipped_then_cut(tmp_path: Path) -> None:
    good = example_event(track_id=1, with_crop=False)
    (tmp_path / EVENTS_FILE).write_bytes(good.to_json() + b"\n" + b'{"schema_version": 1, "ev')
    assert [s.event for s in read_events(tmp_path)] == [good]
    sink = JsonlFolderSink(tmp_path)  # cuts the torn line off before appending
    later = example_event(track_id=2, with_crop=False)
    sink.emit(later, None)
    sink.close()
    assert [s.event for s in read_events(tmp_path)] == [good, later]


def test_bad_line_in_the_middle_names_its_line(tmp_path: Path) -> None:
    good = example_event(with_crop=False).to_json()
    (tmp_path / EVENTS_FILE).write_bytes(good + b"\n" + b"{}\n" + good + b"\n")
    with pytest.raises(ContractError) as info:
        list(read_events(tmp_path))
    assert info.value.fields[0] == "line 2: schema_version"


def test_crop_must_match_the_event(tmp_path: Path) -> None:
    sink = JsonlFolderSink(tmp_path)
    with pytest.raises(ValueError, match="does not match its sha256"):
        sink.emit(_with_crop(example_event()), b"other bytes")
    with pytest.raises(ValueError, match="crop_jpeg must be given exactly when"):
        sink.emit(example_event(with_crop=False), JPEG)
    sink.close()
    assert (tmp_path / EVENTS_FILE).read_bytes() == b""


def test_one_writer_per_folder(tmp_path: Path) -> None:
    first = JsonlFolderSink(tmp_path)
    with pytest.raises(SinkError, match="another process is writing events there"):
        JsonlFolderSink(tmp_path)
    first.close()
    JsonlFolderSink(tmp_path).close()


def test_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot write events there"):
        JsonlFolderSink(blocker / "out")
