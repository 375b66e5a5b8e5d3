"""Fleet workbooks against a real S3 (SeaweedFS): the pictures come from the crop bucket, a crop
that was never uploaded is counted, and the delivery puts the person list exports beside the
workbook."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from aggregator.delivery.crops import s3_crop_reader
from aggregator.delivery.deliver import Deliverer, DeliverySite
from aggregator.delivery.settings import DeliverySettings
from aggregator.report.period import ReportPeriod
from aggregator.report.source import EventListSource
from aggregator.report.workbook import ReportOptions, SiteReportInfo, build_site_workbook
from footfall.connections import ObjectStoreSettings
from footfall.contract import PersonEvent
from footfall.contract.examples import example_event
from footfall.objectstore import S3ObjectStore
from tests.services import S3Bucket
from tests.workbook_pictures import pictures_of

pytestmark = pytest.mark.services

DAY = date(2026, 5, 4)
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def _settings(bucket: S3Bucket, name: str) -> ObjectStoreSettings:
    return ObjectStoreSettings(
        endpoint_url=bucket.endpoint_url,
        region=bucket.region,
        bucket=name,
        access_key_id=bucket.access_key,
        secret_access_key=SecretStr(bucket.secret_key),
    )


def _events_with_crops_in(bucket: S3Bucket, n: int, missing: int) -> list[PersonEvent]:
    events = [
        example_event(spot="north", track_id=i, first_seen=T0 + timedelta(minutes=i))
        for i in range(n)
    ]
    ok, jpeg = cv2.imencode(".jpg", np.full((128, 128, 3), 90, np.uint8))
    assert ok
    for i, e in enumerate(events):
        if i != missing and e.crop is not None:
            bucket.client.put_object(
                Bucket=bucket.name, Key=e.crop.key, Body=jpeg.tobytes(), ContentType="image/jpeg"
            )
    return events


def test_pictures_are_read_from_the_crop_bucket(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    events = _events_with_crops_in(s3_bucket, 4, missing=2)
    # The [s3] section names the reports bucket; the crops are in another one on the same store.
    reader = s3_crop_reader(_settings(s3_bucket, "footfall-reports"), s3_bucket.name)
    assert reader is not None
    result = build_site_workbook(
        EventListSource(events),
        SiteReportInfo("site-a", None, "Europe/Berlin"),
        ReportPeriod.day(DAY, "Europe/Berlin"),
        tmp_path / "site-a.xlsx",
        ReportOptions(crop_reader=reader),
    )
    assert (result.pictures, result.crops_missing) == (3, 1)
    assert (reader.not_found, reader.errors) == (1, 0)
    found = pictures_of(result.path, "north")
    assert [p.row for p in found] == [2, 3, 5]
    assert {(p.width, p.height) for p in found} == {(48, 48)}


def test_delivery_uploads_the_workbook_with_pictures_and_its_exports(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    events = _events_with_crops_in(s3_bucket, 3, missing=-1)
    store = S3ObjectStore(_settings(s3_bucket, s3_bucket.name))
    settings = DeliverySettings(work_dir=tmp_path / "work", crop_bucket=s3_bucket.name, attempts=1)
    deliverer = Deliverer(
        EventListSource(events),
        store,
        settings,
        crop_reader=s3_crop_reader(_settings(s3_bucket, s3_bucket.name), settings.crop_bucket),
    )
    outcome = deliverer.deliver(DeliverySite("site-a", "Site A", "Europe/Berlin"), DAY)
    assert outcome.ok, outcome.error
    folder = "reports/site-a/2026-05-04"
    workbook = tmp_path / "delivered.xlsx"
    workbook.write_bytes(store.get_bytes(f"{folder}/site-a_2026-05-04.xlsx"))
    assert len(pictures_of(workbook, "north")) == 3
    parquet = tmp_path / "delivered.parquet"
    parquet.write_bytes(store.get_bytes(f"{folder}/site-a_2026-05-04.persons.parquet"))
    assert pq.read_table(parquet).column("Event id").to_pylist() == [
        str(e.event_id) for e in events
    ]
    head = store.head(f"{folder}/site-a_2026-05-04.persons.csv")
    assert head is not None and head.content_type == "text/csv"
