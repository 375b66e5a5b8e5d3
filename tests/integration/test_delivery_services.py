"""Nightly delivery against the real services: PostgreSQL store, SeaweedFS S3, an SMTP server."""

import io
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from openpyxl import load_workbook
from pydantic import SecretStr

from aggregator.config import AggregatorConfig, SiteSettings
from aggregator.delivery.jobs import deliver_sites
from aggregator.delivery.settings import DeliverySettings, SmtpSettings
from aggregator.store import EventStore
from aggregator.store.deliveries import DeliveryLogTable
from aggregator.store.rows import StoredEvent
from footfall.connections import ObjectStoreSettings
from footfall.contract.examples import example_event
from infra.devservices import S3Server, free_ports
from tests.services import PgDatabase, S3Bucket, ServiceFactory

pytestmark = pytest.mark.services

DAY = date(2026, 5, 4)
T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)  # 08:00 in Berlin


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[object]]]:
    received: list[object] = []

    class _Keep(Message):
        def handle_message(self, message: object) -> None:
            received.append(message)

    port = free_ports(1)[0]
    controller = Controller(_Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def _config(endpoint: str, bucket: str, key: str, secret: str, smtp_port: int) -> AggregatorConfig:
    return AggregatorConfig(
        s3=ObjectStoreSettings(
            endpoint_url=endpoint,
            bucket=bucket,
            access_key_id=key,
            secret_access_key=SecretStr(secret),
        ),
        sites=[
            SiteSettings(
                id="site-a",
                name="Site A",
                timezone="Europe/Berlin",
                email_to=["investor@example.net"],
            )
        ],
        delivery=DeliverySettings(
            attempts=2,
            retry_delay_seconds=0,
            smtp=SmtpSettings(
                host="127.0.0.1", port=smtp_port, security="none", sender="reports@footfall.test"
            ),
        ),
    )


def _store(pg_database: PgDatabase, people: int) -> EventStore:
    store = EventStore.open(pg_database.url, password=pg_database.password)
    events = [
        example_event(spot=("north", "south")[i % 2], first_seen=T0 + timedelta(minutes=i))
        for i in range(people)
    ]
    store.add_events([StoredEvent(e, T0, "test") for e in events])
    return store


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


def test_delivery_uploads_links_mails_and_replaces(
    pg_database: PgDatabase, s3_bucket: S3Bucket, smtp: tuple[int, list[object]]
) -> None:
    port, mails = smtp
    cfg = _config(
        s3_bucket.endpoint_url, s3_bucket.name, s3_bucket.access_key, s3_bucket.secret_key, port
    )
    store = _store(pg_database, 7)
    try:
        [first] = deliver_sites(cfg, store, day=DAY)
        assert (
            first.ok
            and first.people == 7
            and first.key == "reports/site-a/2026-05-04/site-a_2026-05-04.xlsx"
        )
        assert first.url is not None
        workbook = load_workbook(io.BytesIO(_fetch(first.url)))
        assert workbook.sheetnames == ["Summary", "Charts", "Age mix", "north", "south", "About"]
        assert [
            r[2] for r in workbook["Summary"].iter_rows(min_row=2, max_row=3, values_only=True)
        ] == [4, 3]
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=first.key)
        assert (
            head["ContentType"]
            == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        assert head["Metadata"]["people"] == "7" and head["Metadata"]["day"] == "2026-05-04"
        body = mails[0].get_payload(decode=True).decode()  # type: ignore[attr-defined]
        assert len(mails) == 1 and first.url in body

        # New events arrive late; running the delivery again replaces the report under the same key.
        store.add_events([StoredEvent(example_event(spot="east", first_seen=T0), T0, "late")])
        [second] = deliver_sites(cfg, store, day=DAY)
        assert second.ok and second.key == first.key and second.people == 8
        listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]
        # The workbook and its person list exports, each replaced rather than added again.
        folder = "reports/site-a/2026-05-04"
        assert sorted(o["Key"] for o in listed) == [
            f"{folder}/site-a_2026-05-04.persons.csv",
            f"{folder}/site-a_2026-05-04.persons.parquet",
            first.key,
        ]
        assert second.url is not None
        replaced = load_workbook(io.BytesIO(_fetch(second.url)))
        assert "east" in replaced.sheetnames

        log = DeliveryLogTable(store.engine).recent(site="site-a")
        assert [(r.ok, r.people) for r in log] == [(True, 8), (True, 7)]
    finally:
        store.close()


def test_failed_delivery_is_retried_and_recorded(
    pg_database: PgDatabase,
    s3_factory: ServiceFactory[S3Server],
    smtp: tuple[int, list[object]],
    tmp_path: Path,
) -> None:
    port, mails = smtp
    server = s3_factory()
    server.client().create_bucket(Bucket="reports")
    cfg = _config(server.endpoint_url, "reports", server.access_key, server.secret_key, port)
    store = _store(pg_database, 3)
    try:
        server.stop()
        [outcome] = deliver_sites(cfg, store, day=DAY)
        assert not outcome.ok and outcome.attempts == 2
        assert outcome.error is not None and outcome.error.startswith(
            "ObjectStoreError: put s3://reports/"
        )
        assert mails == []
        server.start()
        [again] = deliver_sites(cfg, store, day=DAY)
        assert again.ok
        log = DeliveryLogTable(store.engine).recent(site="site-a")
        assert [r.ok for r in log] == [True, False]
        assert log[1].error == outcome.error
    finally:
        store.close()
