"""Synthetic events with real crop bytes, shared by the delivery tests, the agent driver and the
outbox benchmark."""

import hashlib
import random
import time
from collections.abc import Callable, Iterator

from footfall.contract import CropRef, PersonEvent
from footfall.contract.examples import random_events
from footfall.contract.keys import crop_key
from footfall.contract.topics import AgentAddress

# Enough of a JPEG header that a viewer would recognise the type; the rest is noise.
_JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def fake_jpeg(rng: random.Random, size: int) -> bytes:
    return _JPEG_HEAD + rng.randbytes(max(0, size - len(_JPEG_HEAD) - 2)) + b"\xff\xd9"


def with_crop(event: PersonEvent, jpeg: bytes) -> PersonEvent:
    """``event`` with a crop reference that matches ``jpeg`` (key, sha256, size)."""
    ref = CropRef(
        key=crop_key(event.site, event.spot, event.first_seen, event.event_id),
        sha256=hashlib.sha256(jpeg).hexdigest(),
        size_bytes=len(jpeg),
    )
    return event.model_copy(update={"crop": ref})


def synthetic_events(
    n: int,
    *,
    seed: int,
    address: AgentAddress,
    crop_bytes: int | None = None,
    exact_size: bool = False,
) -> Iterator[tuple[PersonEvent, bytes | None]]:
    """``n`` reproducible events of one agent; with ``crop_bytes`` each carries a crop of that
    size (``exact_size``) or of 0.5-1.5 times it (its JPEG is made from the same seed)."""
    rng = random.Random(seed)
    crop_rng = random.Random(seed + 1)
    for event in random_events(n, rng=rng, site=address.site, spots=(address.spot,)):
        own = event.model_copy(update={"agent": address.agent, "crop": None})
        if crop_bytes is None:
            yield own, None
        else:
            size = (
                crop_bytes if exact_size else crop_rng.randint(crop_bytes // 2, crop_bytes * 3 // 2)
            )
            jpeg = fake_jpeg(crop_rng, size)
            yield with_crop(own, jpeg), jpeg
