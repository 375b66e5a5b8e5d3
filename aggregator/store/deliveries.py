"""The delivery log: one row per delivery run of a site's workbook, successful or not."""

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from aggregator.delivery.deliver import DeliveryOutcome
from aggregator.store import tables


@dataclass(frozen=True)
class DeliveryRow:
    site: str
    day: date
    ok: bool
    attempts: int
    object_key: str | None
    people: int
    emailed: str | None
    error: str | None
    finished_at: datetime


class DeliveryLogTable:
    """Implements :class:`aggregator.delivery.deliver.DeliveryLog` on the store's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record_delivery(self, outcome: DeliveryOutcome) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(tables.deliveries).values(
                    site=outcome.site,
                    day=outcome.day,
                    ok=outcome.ok,
                    attempts=outcome.attempts,
                    object_key=outcome.key,
                    url_expires_at=outcome.url_expires_at,
                    people=outcome.people,
                    emailed=", ".join(outcome.emailed) or None,
                    error=(outcome.error or "")[:1000] or None,
                    finished_at=outcome.finished_at,
                )
            )

    def recent(self, *, site: str | None = None, limit: int = 50) -> list[DeliveryRow]:
        t = tables.deliveries
        stmt = sa.select(t).order_by(t.c.id.desc()).limit(limit)
        if site is not None:
            stmt = stmt.where(t.c.site == site)
        with self.engine.connect() as conn:
            return [
                DeliveryRow(
                    site=r.site,
                    day=r.day,
                    ok=bool(r.ok),
                    attempts=r.attempts,
                    object_key=r.object_key,
                    people=r.people,
                    emailed=r.emailed,
                    error=r.error,
                    finished_at=r.finished_at,
                )
                for r in conn.execute(stmt)
            ]
