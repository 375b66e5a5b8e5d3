"""Object keys of face crops. The device computes the key when it makes the event, so the event
names where its crop will be even while the object store is unreachable."""

from datetime import UTC, datetime
from uuid import UUID

from footfall.ids import check_id


def crop_key(site: str, spot: str, first_seen: datetime, event_id: UUID) -> str:
    """``<site>/<spot>/<yyyy-mm-dd UTC>/<event id>.jpg``."""
    return f"{check_id(site)}/{check_id(spot)}/{first_seen.astimezone(UTC):%Y-%m-%d}/{event_id}.jpg"
