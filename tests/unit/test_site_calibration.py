"""Site calibration: an operator labels a sample of one spot's crops, ``calibrate`` stores what
the classifier gets wrong there, and that spot's shares use it (the workbook says so)."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.report.period import ReportPeriod
from aggregator.report.workbook import ReportOptions, SiteReportInfo, build_site_workbook
from aggregator.shares.estimate import adjusted_count
from aggregator.shares.site import LabelsError, read_labels
from aggregator.store import EventStore
from aggregator.store.report_source import StoreReportSource
from aggregator.store.rows import StoredEvent
from aggregator.store.spot_calibrations import SpotCalibrationsTable
from footfall.contract import Gender, PersonEvent
from footfall.contract.examples import example_event

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
DAY = date(2026, 5, 4)


def _spot_events(n: int, women: float, rng: np.random.Generator) -> list[tuple[PersonEvent, str]]:
    """People of spot 'north' seen by a camera whose classifier calls 30 % of women men and 5 %
    of men women (steeper than on clean faces); each with their true gender."""
    out = []
    for i in range(n):
        woman = rng.random() < women
        says_woman = rng.random() > 0.30 if woman else rng.random() < 0.05
        event = example_event(
            spot="north",
            agent="cam-north",
            first_seen=T0 + timedelta(seconds=i),
            gender=Gender.FEMALE if says_woman else Gender.MALE,
            age_years=30.0,
            with_crop=True,
        )
        out.append((event, "female" if woman else "male"))
    return out


def test_labels_files_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("crop_key,gender,age_group\na/b.jpg,female,25-32\nc/d.jpg,,unknown\n")
    labels = read_labels(good)
    assert labels["a/b.jpg"].gender == 0 and labels["a/b.jpg"].group == 4
    assert labels["c/d.jpg"].gender is None and labels["c/d.jpg"].group is None
    bad = tmp_path / "bad.csv"
    bad.write_text("crop_key,gender,age_group\na/b.jpg,woman,25-32\n")
    with pytest.raises(LabelsError, match=r"bad.csv, line 2: gender 'woman' is not one of"):
        read_labels(bad)
    (tmp_path / "header.csv").write_text("key,gender\n")
    with pytest.raises(LabelsError, match="missing age_group, crop_key"):
        read_labels(tmp_path / "header.csv")


def test_a_spot_calibrated_on_its_own_people_reports_their_share(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    db = tmp_path / "footfall.db"
    url = f"sqlite:///{db}"
    store = EventStore.open(url)
    sample = _spot_events(150, 0.5, rng)  # the labelled sample, from earlier days' crops
    day = [
        (e.model_copy(update={"first_seen": e.first_seen + timedelta(hours=1)}), g)
        for e, g in _spot_events(600, 0.7, rng)
    ]
    store.add_events([StoredEvent(e, T0, "test") for e, _ in sample + day])
    store.close()
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "crop_key,gender,age_group\n"
        + "".join(f"{e.crop.key},{g},25-32\n" for e, g in sample if e.crop is not None)
    )

    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--site",
            "site-a",
            "--spot",
            "north",
            "--labels",
            str(labels),
            "--store",
            url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "site-a/north: 150 of 150 labelled crops matched its events" in result.output
    assert "gender: 150 people, women called men" in result.output

    store = EventStore.open(url)
    try:
        rows = SpotCalibrationsTable(store.engine).for_site("site-a")
        assert {(r.spot, r.role, r.labelled) for r in rows} == {
            ("north", "gender", 150),
            ("north", "age", 150),
        }
        confusion = np.array(
            next(r for r in rows if r.role == "gender").record["calibration"]["confusion"]
        )
        assert confusion[0, 1] == pytest.approx(0.30, abs=0.1)
        out = tmp_path / "site-a.xlsx"
        build_site_workbook(
            StoreReportSource(store),
            SiteReportInfo("site-a", None, "UTC"),
            ReportPeriod.day(DAY, "UTC"),
            out,
            ReportOptions(),
        )
    finally:
        store.close()
    wb = load_workbook(out)
    header = [c.value for c in wb["Summary"][1]]
    north = dict(zip(header, [c.value for c in wb["Summary"][2]], strict=False))
    every = [e for e, _ in sample + day]
    counted = sum(e.gender.label is Gender.FEMALE for e in every) / len(every)
    truth = sum(g == "female" for _, g in sample + day) / len(every)
    expected = adjusted_count(np.array([counted, 1 - counted]), confusion)[0]
    text = str(north["Women % (95 % interval)"])
    shown = float(text.split(" %")[0]) / 100
    low, high = (float(v) / 100 for v in text.split("(")[1].rstrip(" %)").split("-"))
    assert shown == pytest.approx(expected, abs=0.006)
    # The counted share is far off (the camera's steeper confusion); the spot's own calibration
    # brings it much nearer, and its interval - which carries how little 150 labelled people
    # tell about the confusion - covers the truth.
    assert abs(counted - truth) > 0.1
    assert abs(shown - truth) < abs(counted - truth) / 2
    assert low <= truth <= high
    about = {r[0]: r[1] for r in wb["About"].iter_rows(min_row=2, max_col=2, values_only=True)}
    assert "north: site calibration of cydral-gender (150 labelled people)" in str(
        about["Share calibrations"]
    )


def test_calibrate_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'footfall.db'}"
    EventStore.open(url).close()
    labels = tmp_path / "labels.csv"
    labels.write_text("crop_key,gender,age_group\nnot/a/crop.jpg,female,25-32\n")
    runner = CliRunner()
    missing = runner.invoke(
        app,
        [
            "calibrate",
            "--site",
            "s",
            "--spot",
            "p",
            "--labels",
            str(tmp_path / "no.csv"),
            "--store",
            url,
        ],
    )
    assert missing.exit_code == 1
    assert "no.csv: no such labels file" in missing.output
    none = runner.invoke(
        app, ["calibrate", "--site", "s", "--spot", "p", "--labels", str(labels), "--store", url]
    )
    assert none.exit_code == 1
    assert "none of the 1 crop keys" in none.output and "Traceback" not in none.output
