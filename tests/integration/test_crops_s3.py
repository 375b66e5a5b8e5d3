"""Face crops to a real S3 (SeaweedFS) through an outage: events keep flowing to the broker while
S3 is down, and after recovery every crop is there, byte for byte (sha256), with its type,
metadata and server-side encryption."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent import Delivery
from edge_agent.config import AgentConfig
from footfall.contract import PersonEvent
from infra import devservices as ds
from tests.delivery_support import synthetic_events
from tests.services import MqttNamespace, ServiceFactory

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
            "delivery": {"crop_retry_min_seconds": 0.1, "crop_retry_max_seconds": 0.5},
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
    from edge_agent.outbox import Outbox, outbox_path

    with Outbox(outbox_path(data_dir)) as box:
        return box.status().entries == 0
