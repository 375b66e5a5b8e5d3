"""The report and deliver commands, through typer's CliRunner on a SQLite store."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.store import EventStore
from aggregator.store.rows import StoredEvent
from footfall.contract.examples import example_event

runner = CliRunner()
T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = EventStore.open(url)
    events = [example_event(spot="north", first_seen=T0 + timedelta(minutes=i)) for i in range(5)]
    events.append(example_event(spot="north", first_seen=T0 + timedelta(days=1)))  # the next day
    store.add_events([StoredEvent(e, T0, "test") for e in events])
    store.close()
    return url


def test_report_for_a_day_and_a_range(tmp_path: Path) -> None:
    url = _store(tmp_path)
    out = tmp_path / "day.xlsx"
    args = [
        "report",
        "--site",
        "site-a",
        "--store",
        url,
        "--timezone",
        "Europe/Berlin",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, [*args, "--date", "2026-05-04"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{out}: 5 people at 1 spots, 2026-05-04 (Europe/Berlin)\n"
        f"  person list: {tmp_path / 'day.persons.csv'}\n"
        f"  person list: {tmp_path / 'day.persons.parquet'}\n"
        "  #1 north: 5 people, 100% women\n"
    )
    assert load_workbook(out).sheetnames == ["Summary", "Charts", "Age mix", "north", "About"]
    result = runner.invoke(app, [*args, "--from", "2026-05-04", "--to", "2026-05-05"])
    assert result.exit_code == 0, result.output
    assert "6 people at 1 spots, 2026-05-04 to 2026-05-05 (Europe/Berlin)" in result.output


def test_report_option_errors(tmp_path: Path) -> None:
    url = _store(tmp_path)
    base = ["report", "--site", "site-a", "--store", url, "--out", str(tmp_path / "x.xlsx")]
    result = runner.invoke(app, [*base, "--from", "2026-05-04"])
    assert result.exit_code == 2
    assert "error: --from and --to go together" in result.output
    result = runner.invoke(app, [*base, "--from", "2026-05-05", "--to", "2026-05-04"])
    assert result.exit_code == 2
    assert "error: --to is before --from" in result.output


def test_deliver_needs_a_delivery_section(tmp_path: Path) -> None:
    cfg = tmp_path / "agg.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "f.db"}"\n', encoding="utf-8")
    result = runner.invoke(app, ["deliver", "--config", str(cfg)])
    assert result.exit_code == 2
    assert f"error: {cfg}: no [delivery] section" in result.output


def test_deliver_with_delivery_but_no_s3_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "agg.toml"
    cfg.write_text("[delivery]\nattempts = 1\n", encoding="utf-8")
    result = runner.invoke(app, ["validate-config", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "(top level): delivery needs an [s3] section to upload the workbooks to" in result.output


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (
            ["--date", "9999-12-31"],
            "error: --date: 9999-12-31 is outside the days events can have "
            "(2000-01-01 to 2099-12-31)\n",
        ),
        (
            ["--date", "1999-12-31"],
            "error: --date: 1999-12-31 is outside the days events can have "
            "(2000-01-01 to 2099-12-31)\n",
        ),
        (
            ["--from", "2099-12-30", "--to", "2100-01-01"],
            "error: --from/--to: 2100-01-01 is outside the days events can have "
            "(2000-01-01 to 2099-12-31)\n",
        ),
    ],
)
def test_report_days_outside_the_contract_are_one_line_not_a_crash(
    tmp_path: Path, days: list[str], message: str
) -> None:
    url = _store(tmp_path)
    out = tmp_path / "x.xlsx"
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):  # the extreme offsets, +14 and -12
        result = runner.invoke(
            app,
            [
                "report",
                "--site",
                "site-a",
                "--store",
                url,
                "--out",
                str(out),
                "--timezone",
                zone,
                *days,
            ],
        )
        assert (result.exit_code, result.output) == (2, message)
    assert not out.exists()


def test_the_last_day_events_can_have_is_reported_in_every_time_zone(tmp_path: Path) -> None:
    url = _store(tmp_path)
    for zone, day in (("Pacific/Kiritimati", "2099-12-31"), ("Etc/GMT+12", "2000-01-01")):
        out = tmp_path / f"{day}.xlsx"
        base = ["report", "--site", "site-a", "--store", url, "--out", str(out)]
        result = runner.invoke(app, [*base, "--timezone", zone, "--date", day])
        assert result.exit_code == 0, result.output
        assert f"{out}: 0 people at 0 spots, {day} ({zone})" in result.output


def test_deliver_refuses_a_day_outside_the_contract(tmp_path: Path) -> None:
    cfg = tmp_path / "agg.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "f.db"}"\n[s3]\nbucket = "reports"\n'
        "[delivery]\nattempts = 1\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["deliver", "--config", str(cfg), "--date", "9999-12-31"])
    assert (result.exit_code, result.output) == (
        2,
        "error: --date: 9999-12-31 is outside the days events can have (2000-01-01 to 2099-12-31)\n",
    )
