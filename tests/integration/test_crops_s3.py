"""Face crops to a real S3 (SeaweedFS) through an outage: events keep flowing to the broker while
S3 is down, and after recovery every crop is there, byte for byte (sha256), with its type,
metadata and server-side encryption."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent import Delivery
from edge_agent.config import AgentConfig
from edge_agent.delivery.outbox import NOTE_OVER_CAP
from footfall.contract import PersonEvent
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.services import MqttNamespace, S3Bucket, ServiceFactory

pytestmark = [pytest.mark.services, pytest.mark.slow]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_crops_wait_out_an_s3_outage_and_all_arrive_intact(
    mqtt_namespace: MqttNamespace, s3_factory: ServiceFactory[ds.S3Server], tmp_path: Path
) -> None:
    ns = mqtt_namespace
    s3 = s3_factory(buckets=["crops"])
    agent = ns.agents[0]
    config = AgentConfig.model_validate(
        {
            "site": "site-a",
            "spot": "spot-1",
            "agent": "agent-1",
            "data_dir": tmp_path / "data",
            # A bare subscriber, no aggregator sending receipts: the PUBACK confirms.
            "delivery": {
                "crop_retry_min_seconds": 0.1,
                "crop_retry_max_seconds": 0.5,
                "confirm": "broker",
            },
            "mqtt": {
                "host": ns.broker.host,
                "port": ns.broker.tls_port,
                "ca_file": ns.broker.ca_file,
                "username": agent.name,
                "password": agent.password,
                "topic_prefix": ns.prefix,
            },
            "s3": {
                "endpoint_url": s3.endpoint_url,
                "region": s3.region,
                "bucket": "crops",
                "access_key_id": s3.access_key,
                "secret_access_key": s3.secret_key,
                "server_side_encryption": "AES256",
            },
        }
    )
    items = list(synthetic_events(60, seed=11, address=config.address, crop_bytes=8000))
    received: list[PersonEvent] = []

    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(f"{ns.prefix}/site-a/spot-1/agent-1/events")

        def drain_watcher() -> int:
            while (msg := watcher.next_message(0.0)) is not None:
                received.append(PersonEvent.model_validate_json(msg.payload))
            return len(received)

        with Delivery(config) as delivery:
            assert delivery.uploader is not None
            uploader = delivery.uploader
            outbox = delivery.outbox
            outbox.put_many(items[:20])
            wait_for(lambda: outbox.crops_pending() == 0, "the first crops")

            s3.stop()
            outbox.put_many(items[20:])
            # Events do not wait for their crops.
            wait_for(lambda: drain_watcher() == 60, "all 60 events at the aggregator")
            wait_for(lambda: uploader.stats().failing, "the uploader to notice the outage")
            assert outbox.crops_pending() == 40
            assert outbox.depth() == 0
            assert uploader.stats().last_error is not None

            s3.start()
            wait_for(lambda: outbox.crops_pending() == 0, "the crops after recovery", 90)
            assert not uploader.stats().failing
        assert outbox_empty(tmp_path / "data")

    client = s3.client()
    by_id = {str(e.event_id): e for e in received}
    assert set(by_id) == {str(e.event_id) for e, _ in items}
    for event, jpeg in items:
        assert event.crop is not None and jpeg is not None
        # The event as the aggregator got it names the key the crop now has.
        sent = by_id[str(event.event_id)]
        assert sent.crop == event.crop
        obj = client.get_object(Bucket="crops", Key=event.crop.key)
        body = obj["Body"].read()
        assert hashlib.sha256(body).hexdigest() == event.crop.sha256
        assert body == jpeg
        assert obj["ContentType"] == "image/jpeg"
        assert obj["ServerSideEncryption"] == "AES256"
        assert obj["Metadata"] == {
            "sha256": event.crop.sha256,
            "site": "site-a",
            "spot": "spot-1",
            "agent": "agent-1",
            "event-id": str(event.event_id),
        }
    listed = client.list_objects_v2(Bucket="crops", Prefix="site-a/spot-1/")
    assert listed["KeyCount"] == 60


def outbox_empty(data_dir: Path) -> bool:
    from edge_agent.delivery.outbox import Outbox, outbox_path

    with Outbox(outbox_path(data_dir)) as box:
        return box.status().entries == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("broker", ["up", "down during the burst"])
def test_under_the_cap_no_crop_is_left_in_s3_without_an_event_naming_it(
    broker: str, mqtt_namespace: MqttNamespace, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """The outbox cap drops crops while the uploader works through them. Every object in S3 must
    still be named by the event the aggregator got (no orphan), and the counters agree: what the
    uploader says it uploaded, what the outbox says it stored, and what S3 holds.

    With the broker down the dropped crops belong to events not yet sent (they go out with a
    crop note); with it up, mostly to events already sent (the cloud's copy keeps the key)."""
    ns = mqtt_namespace
    agent = ns.agents[0]
    mqtt = {
        "host": ns.broker.host,
        "port": ns.broker.tls_port,
        "ca_file": ns.broker.ca_file,
        "username": agent.name,
        "password": agent.password,
        "topic_prefix": ns.prefix,
        "reconnect_min_seconds": 0.2,
        "reconnect_max_seconds": 0.5,
    }
    base = {
        "site": "site-a",
        "spot": "spot-1",
        "agent": "agent-1",
        "data_dir": tmp_path / "data",
        # Room for about 50 crops of 20 KB: far fewer than arrive in the burst below.
        "outbox": {"max_bytes": 1024 * 1024, "synchronous": "normal"},
        # A bare subscriber, no aggregator sending receipts: the PUBACK confirms.
        "delivery": {
            "crop_retry_min_seconds": 0.1,
            "crop_retry_max_seconds": 0.5,
            "confirm": "broker",
        },
        "mqtt": mqtt,
        "s3": {
            "endpoint_url": s3_bucket.endpoint_url,
            "region": s3_bucket.region,
            "bucket": s3_bucket.name,
            "access_key_id": s3_bucket.access_key,
            "secret_access_key": s3_bucket.secret_key,
        },
    }
    config = AgentConfig.model_validate(base)
    burst_config = config
    if broker != "up":
        # Nothing listens there: the events wait in the outbox while the crops go to S3.
        burst_config = AgentConfig.model_validate({**base, "mqtt": {**mqtt, "port": _free_port()}})
    n = 600
    items = list(synthetic_events(n, seed=23, address=config.address, crop_bytes=20_000))
    received: dict[str, PersonEvent] = {}
    uploaded = 0

    with ns.client(ns.aggregator) as watcher:
        assert not watcher.connect().is_failure
        watcher.subscribe(f"{ns.prefix}/site-a/spot-1/agent-1/events")

        def drain_watcher() -> int:
            while (msg := watcher.next_message(0.0)) is not None:
                event = PersonEvent.model_validate_json(msg.payload)
                received[str(event.event_id)] = event
            return len(received)

        with Delivery(burst_config) as delivery:
            assert delivery.uploader is not None
            outbox = delivery.outbox
            # Faster than S3 takes them: the cap drops crops, many of them while the uploader
            # holds them.
            for start in range(0, n, 10):
                outbox.put_many(items[start : start + 10])
                time.sleep(0.005)
            wait_for(lambda: outbox.crops_pending() == 0, "the crops that were kept", 60)
            uploaded += delivery.uploader.stats().crops_uploaded
        with Delivery(config) as delivery:
            assert delivery.uploader is not None
            wait_for(lambda: drain_watcher() == n, f"all {n} events at the aggregator", 60)
            uploaded += delivery.uploader.stats().crops_uploaded
            counters = delivery.outbox.counters()

    keys: set[str] = set()
    for page in s3_bucket.client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket.name):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    named = {e.crop.key for e in received.values() if e.crop is not None}
    noted = [e for e in received.values() if e.crop is None]

    assert counters.crops_accepted == n
    assert counters.crops_dropped > n // 4, "the scenario must really drop crops"
    assert counters.crops_stored + counters.crops_dropped == counters.crops_accepted
    # No orphan: every object is named by an event that left the device.
    assert sorted(keys - named) == []
    # The three numbers for "uploaded" agree.
    assert uploaded == counters.crops_stored == len(keys)
    # An event told "dropped on the device" has no object under its original key.
    originals = {str(e.event_id): e.crop.key for e, _ in items if e.crop is not None}
    assert all(e.crop_note == NOTE_OVER_CAP for e in noted)
    assert not {originals[str(e.event_id)] for e in noted} & keys
    # Named but never uploaded: exactly the crops the cap dropped after their event had been
    # handed to the broker (from then on its payload is fixed, so it keeps naming the key).
    missing = named - keys
    assert counters.crops_dropped_after_publish == len(missing)
    if broker == "up":
        assert counters.crops_dropped_after_publish > 0
    else:
        # Nothing was on its way: every dropped crop's event went out saying so.
        assert counters.crops_dropped_after_publish == 0 and not missing
        assert len(noted) == counters.crops_dropped


def test_a_corrected_s3_secret_file_takes_effect_without_a_restart(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """A wrong secret is the store's answer, so it is retried, not fatal; writing the right one
    into the file is enough, as with the broker's password file."""
    secret = tmp_path / "s3.secret"
    secret.write_text("not-the-secret\n", encoding="utf-8")
    config = AgentConfig.model_validate(
        {
            "site": "site-a",
            "spot": "spot-1",
            "agent": "agent-1",
            "data_dir": tmp_path / "data",
            "delivery": {"crop_retry_min_seconds": 0.1, "crop_retry_max_seconds": 0.3},
            "s3": {
                "endpoint_url": s3_bucket.endpoint_url,
                "region": s3_bucket.region,
                "bucket": s3_bucket.name,
                "access_key_id": s3_bucket.access_key,
                "secret_access_key_file": secret,
            },
        }
    )
    items = list(synthetic_events(5, seed=29, address=config.address, crop_bytes=3000))
    with Delivery(config) as delivery:
        assert delivery.uploader is not None
        uploader = delivery.uploader
        delivery.outbox.put_many(items)
        wait_for(lambda: uploader.stats().upload_failures >= 3, "the refused uploads")
        assert "SignatureDoesNotMatch" in (uploader.stats().last_error or "")
        secret.write_text(s3_bucket.secret_key + "\n", encoding="utf-8")
        wait_for(lambda: delivery.outbox.crops_pending() == 0, "the uploads with the new secret")
        assert uploader.stats().crops_uploaded == 5 and delivery.failure is None
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)
    assert listed["KeyCount"] == 5
