"""Opening the configured store: the one place that turns the store and fleet settings into an
:class:`~aggregator.store.EventStore`, for the service, the commit worker and the commands."""

from datetime import timedelta

from aggregator.config import FleetSettings, StoreSettings
from aggregator.store.store import EventStore


def open_store(
    settings: StoreSettings, fleet: FleetSettings | None = None, *, upgrade: bool | None = None
) -> EventStore:
    """Open the configured store. ``upgrade`` defaults to ``settings.auto_upgrade``."""
    fleet = fleet or FleetSettings()
    return EventStore.open(
        settings.url,
        password=settings.password_value(),
        upgrade=settings.auto_upgrade if upgrade is None else upgrade,
        heartbeat_interval=timedelta(seconds=fleet.heartbeat_interval_seconds),
        gap_multiple=fleet.coverage_gap_multiple,
    )
