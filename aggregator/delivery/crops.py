"""Reading the agents' face crops from the object store for the pictures in the person lists
(the report's :class:`~aggregator.report.thumbnails.CropReader`)."""

import logging
import threading

from footfall.connections import ObjectStoreSettings
from footfall.objectstore import ObjectStore, ObjectStoreError, S3ObjectStore

log = logging.getLogger(__name__)


class StoreCropReader:
    """Crops at their crop key in an object store.

    A crop that is not there (never uploaded, expired by a lifecycle rule) is ``None``. So is one
    the store refuses; but after ``give_up_after`` such errors in a row the store is taken to be
    unreachable and not asked again for this workbook, which would otherwise wait out every
    remaining read's timeouts and retries.
    """

    def __init__(self, store: ObjectStore, give_up_after: int = 20) -> None:
        if give_up_after < 1:
            raise ValueError(f"give_up_after must be >= 1, got {give_up_after}")
        self.store = store
        self.give_up_after = give_up_after
        self.not_found = 0
        self.errors = 0
        self._in_a_row = 0
        self._lock = threading.Lock()  # the report reads a few crops at once

    @property
    def gave_up(self) -> bool:
        return self._in_a_row >= self.give_up_after

    def read(self, key: str) -> bytes | None:
        if self.gave_up:
            return None
        try:
            data = self.store.get_bytes(key)
        except (ObjectStoreError, KeyError) as exc:
            self._failed(key, exc)
            return None
        with self._lock:
            self._in_a_row = 0
        return data

    def _failed(self, key: str, exc: Exception) -> None:
        try:
            missing = self.store.head(key) is None
        except ObjectStoreError:
            missing = False
        with self._lock:
            if missing:
                self.not_found += 1
                self._in_a_row = 0
                return
            self.errors += 1
            self._in_a_row += 1
            if self._in_a_row == self.give_up_after:
                log.warning(
                    "crop store failed %d times in a row (last: %s); the remaining rows get no "
                    "picture",
                    self._in_a_row,
                    exc,
                )


def s3_crop_reader(
    s3: ObjectStoreSettings | None, crop_bucket: str | None
) -> StoreCropReader | None:
    """A reader of ``crop_bucket`` on the ``[s3]`` store (its endpoint and credentials), or
    ``None`` when either is not configured."""
    if s3 is None or crop_bucket is None:
        return None
    settings = s3.model_copy(update={"bucket": crop_bucket})
    # Short timeouts and one retry: a crop is decoration, the workbook must not wait on it.
    return StoreCropReader(S3ObjectStore(settings, connect_timeout=3.0, retries=1))
