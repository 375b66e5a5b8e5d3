"""Nightly delivery: schedule arithmetic across DST, retries, reporting, real SMTP on loopback."""

import socket
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from aggregator.delivery.deliver import Deliverer, DeliveryOutcome, DeliverySite, report_key
from aggregator.delivery.mail import Mail, MailError, SmtpMailer
from aggregator.delivery.schedule import SiteSchedule, next_run, report_day
from aggregator.delivery.settings import DeliverySettings, SmtpSettings
from aggregator.report.source import EventListSource
from footfall.contract.examples import example_event
from footfall.objectstore import MemoryObjectStore

BERLIN = ZoneInfo("Europe/Berlin")
SITE = DeliverySite("site-a", "Site A", "Europe/Berlin", ("investor@example.net",))


@pytest.mark.parametrize(
    ("after", "at", "expected"),
    [
        # Ordinary day: 06:00 CEST is 04:00 UTC.
        (
            datetime(2026, 5, 4, 3, 0, tzinfo=UTC),
            time(6, 0),
            datetime(2026, 5, 4, 4, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 5, 4, 4, 0, tzinfo=UTC),
            time(6, 0),
            datetime(2026, 5, 5, 4, 0, tzinfo=UTC),
        ),
        # Spring forward (29 March 2026): 02:30 does not exist; runs at 03:00 CEST = 01:00 UTC.
        (
            datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
            time(2, 30),
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        ),
        # Fall back (25 October 2026): 02:30 happens twice; runs at the first, 00:30 UTC.
        (
            datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
            time(2, 30),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            time(2, 30),
            datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        ),
    ],
)
def test_next_run_in_local_time(after: datetime, at: time, expected: datetime) -> None:
    assert next_run(SiteSchedule("s", BERLIN, at), after) == expected


def test_a_run_reports_the_local_day_that_ended() -> None:
    schedule = SiteSchedule("s", BERLIN, time(0, 30))
    run = next_run(schedule, datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
    assert run == datetime(2026, 5, 4, 22, 30, tzinfo=UTC)  # 00:30 on 5 May, local
    assert report_day(schedule, run) == date(2026, 5, 4)


class _Log:
    def __init__(self) -> None:
        self.outcomes: list[DeliveryOutcome] = []

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        self.outcomes.append(outcome)


class _FlakyStore(MemoryObjectStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        if self.failures:
            self.failures -= 1
            from footfall.objectstore import ObjectStoreError

            raise ObjectStoreError("put s3://bucket/key: connection refused")
        super().put_file(key, path, content_type=content_type)


def _source() -> EventListSource:
    at = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    return EventListSource([example_event(first_seen=at + timedelta(minutes=i)) for i in range(3)])


def test_delivery_uploads_links_and_records(tmp_path: Path) -> None:
    store, log_, sent = MemoryObjectStore(), _Log(), []

    class _Mailer:
        def send(self, mail: Mail) -> None:
            sent.append(mail)

    deliverer = Deliverer(
        _source(), store, DeliverySettings(work_dir=tmp_path), mailer=_Mailer(), delivery_log=log_
    )
    outcome = deliverer.deliver(SITE, date(2026, 5, 4))
    key = "reports/site-a/2026-05-04/site-a_2026-05-04.xlsx"
    assert key == report_key("reports", "site-a", date(2026, 5, 4))
    assert outcome.ok and outcome.attempts == 1 and outcome.people == 3 and outcome.key == key
    assert store.objects[key][0][:2] == b"PK"
    assert (
        store.objects[key][1] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert outcome.url is not None and key in outcome.url
    assert log_.outcomes == [outcome]
    assert sent[0].to == ("investor@example.net",) and outcome.url in sent[0].body
    assert "People counted: 3" in sent[0].body
    # The person list exports beside the workbook, linked in the mail.
    folder = "reports/site-a/2026-05-04"
    assert store.objects[f"{folder}/site-a_2026-05-04.persons.csv"][1] == "text/csv"
    assert store.objects[f"{folder}/site-a_2026-05-04.persons.parquet"][0][:4] == b"PAR1"
    for name in ("site-a_2026-05-04.persons.csv", "site-a_2026-05-04.persons.parquet"):
        assert store.presigned_get(f"{folder}/{name}", 168 * 3600) in sent[0].body
    assert list(tmp_path.iterdir()) == []  # the build directory is cleaned up


def test_failed_attempts_are_retried_then_reported(tmp_path: Path) -> None:
    sleeps: list[float] = []
    settings = DeliverySettings(work_dir=tmp_path, attempts=3, retry_delay_seconds=10)
    flaky = _FlakyStore(failures=2)
    outcome = Deliverer(_source(), flaky, settings, sleep=sleeps.append).deliver(
        SITE, date(2026, 5, 4)
    )
    assert outcome.ok and outcome.attempts == 3 and sleeps == [10, 20]

    log_ = _Log()
    dead = _FlakyStore(failures=99)
    outcome = Deliverer(_source(), dead, settings, delivery_log=log_, sleep=sleeps.append).deliver(
        SITE, date(2026, 5, 4)
    )
    assert not outcome.ok and outcome.attempts == 3
    assert outcome.error == "ObjectStoreError: put s3://bucket/key: connection refused"
    assert log_.outcomes == [outcome]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, list[object]]]:
    """A real SMTP server on a loopback port (aiosmtpd)."""
    received: list[object] = []

    class _Keep(Message):
        def handle_message(self, message: object) -> None:
            received.append(message)

    controller = Controller(_Keep(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, received
    finally:
        controller.stop()


def test_mail_goes_through_a_real_smtp_server(smtp_server: tuple[Controller, list[object]]) -> None:
    controller, received = smtp_server
    port = controller.port
    mailer = SmtpMailer(
        SmtpSettings(host="127.0.0.1", port=port, security="none", sender="reports@footfall.test")
    )
    mailer.send(Mail(("a@example.net", "b@example.net"), "Footfall report", "link: https://x\n"))
    assert len(received) == 1
    message = received[0]
    assert message["Subject"] == "Footfall report"  # type: ignore[index]
    assert message["To"] == "a@example.net, b@example.net"  # type: ignore[index]
    assert "link: https://x" in message.get_payload()  # type: ignore[attr-defined]


def test_mail_to_an_absent_server_is_one_clear_error() -> None:
    port = _free_port()
    mailer = SmtpMailer(
        SmtpSettings(
            host="127.0.0.1", port=port, security="starttls", sender="r@x.test", timeout_seconds=2
        ),
        ssl.create_default_context(),
    )
    with pytest.raises(MailError, match=rf"^SMTP 127.0.0.1:{port}: .*(refused|Connection)"):
        mailer.send(Mail(("a@example.net",), "s", "b"))
