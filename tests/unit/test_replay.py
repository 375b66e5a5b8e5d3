"""Replay of recorded JSON-lines files through the same validation and store as live ingest."""

import gzip
import io
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.errors import ReplayError
from aggregator.replay import read_lines, replay_files
from aggregator.store import EventStore
from edge_agent.delivery.jsonl_sink import JsonlFolderSink
from footfall.contract.examples import example_event, random_events

EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return EventStore.open(f"sqlite:///{tmp_path / 'replay.db'}")


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_replay_stores_good_lines_counts_duplicates_and_rejects_the_rest(
    tmp_path: Path, store: EventStore
) -> None:
    events = random_events(30, rng=random.Random(5))
    lines = [e.to_json() for e in events]
    bad = [b"{oops", b'{"schema_version": 1}', b"x" * 20_000, b"  ", lines[0]]
    first = _write(tmp_path / "clip-1.jsonl", lines[:20] + bad)
    second = tmp_path / "clip-2.jsonl.gz"
    second.write_bytes(gzip.compress(b"\r\n".join(lines[10:]) + b"\r\n"))

    report = replay_files([first, second], store, batch_size=7)
    assert report.lines_of_text() == [
        "files: 2",
        "lines: 44",
        "stored: 30",
        "duplicates: 11",
        "rejected: 3",
        "  invalid: 2",
        "  too_large: 1",
    ]
    assert store.count_events() == 30
    letters = {d.source: d for d in store.dead_letters()}
    assert set(letters) == {
        "replay:clip-1.jsonl:21",
        "replay:clip-1.jsonl:22",
        "replay:clip-1.jsonl:23",
    }
    too_large = letters["replay:clip-1.jsonl:23"]
    assert (too_large.reason, too_large.payload_size, len(too_large.payload)) == (
        "too_large",
        20_000,
        4096,
    )
    assert too_large.detail == "20000 bytes exceeds the limit of 16384"
    sources = {r.event_id: r.source for b in store.iter_events("site-a", *EVERYTHING) for r in b}
    assert sources[events[0].event_id] == "replay:clip-1.jsonl"
    assert sources[events[25].event_id] == "replay:clip-2.jsonl.gz"

    again = replay_files([first, second], store)
    assert (again.stored, again.duplicates) == (0, 41)


def test_a_directory_means_its_json_lines_files(tmp_path: Path, store: EventStore) -> None:
    events = random_events(4, rng=random.Random(6))
    _write(tmp_path / "b.jsonl", [events[0].to_json(), events[1].to_json()])
    _write(tmp_path / "a.ndjson", [events[2].to_json()])
    (tmp_path / "notes.txt").write_text("not events")
    report = replay_files([tmp_path], store)
    assert (report.files, report.stored) == (2, 3)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.jsonl", "missing.jsonl: file not found"),
        ("empty-dir", "empty-dir: no *.jsonl, *.jsonl.gz, *.ndjson files in this directory"),
    ],
)
def test_bad_inputs_fail_before_anything_is_stored(
    tmp_path: Path, store: EventStore, name: str, message: str
) -> None:
    (tmp_path / "empty-dir").mkdir()
    good = _write(tmp_path / "good.jsonl", [random_events(1, rng=random.Random(7))[0].to_json()])
    with pytest.raises(ReplayError) as info:
        replay_files([good, tmp_path / name], store)
    assert str(info.value) == f"{tmp_path / name}: {message.split(': ', 1)[1]}"
    assert store.count_events() == 0


def test_a_corrupt_gzip_file_is_a_replay_error(tmp_path: Path, store: EventStore) -> None:
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-20])
    with pytest.raises(ReplayError, match=r"broken\.jsonl\.gz: cannot read"):
        replay_files([path], store)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\nbb\r\n\n  \nccc", [(1, b"a", 1, True), (2, b"bb", 2, True), (5, b"ccc", 3, False)]),
        (
            b"12345\n123456\n1234567890123\nz",
            [
                (1, b"12345", 5, True),
                (2, b"123456", 6, True),
                (3, b"1234567", 13, True),
                (4, b"z", 1, False),
            ],
        ),
        (b"1234567890", [(1, b"1234567", 10, False)]),
        (b"123456\r\n", [(1, b"123456", 6, True)]),
    ],
)
def test_read_lines_caps_line_length_and_reports_true_sizes(
    data: bytes, expected: list[tuple[int, bytes, int, bool]]
) -> None:
    assert list(read_lines(io.BytesIO(data), max_bytes=5)) == expected


def test_replay_reads_what_the_agents_process_command_writes(
    tmp_path: Path, store: EventStore
) -> None:
    folder = tmp_path / "out"
    sink = JsonlFolderSink(folder)
    events = [example_event(track_id=n, with_crop=False) for n in range(5)]
    for event in events:
        sink.emit(event, None)
    sink.close()
    with (folder / "events.jsonl").open("ab") as fh:
        fh.write(example_event(track_id=9, with_crop=False).to_json()[:-10])  # a torn write
    report = replay_files([folder], store)
    assert (report.files, report.stored, report.unterminated, report.rejected_total) == (1, 5, 1, 0)
    assert report.lines_of_text()[-1] == "skipped unterminated last lines: 1"
    assert store.count_dead_letters() == 0
