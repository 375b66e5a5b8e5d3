"""The spot_calibrations table: per spot and role (gender, age), the site calibration an operator
fitted from a labelled sample of that spot's crops (``footfall-aggregator calibrate``). The record
is the JSON the share registry reads (:func:`aggregator.shares.registry.parse`)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.store import tables


@dataclass(frozen=True)
class SpotCalibrationRow:
    site: str
    spot: str
    role: str
    model: str
    labelled: int
    record: dict[str, Any]
    fitted_at: datetime


class SpotCalibrationsTable:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(self, row: SpotCalibrationRow) -> None:
        """Insert or replace the spot's calibration for the role (a new sample supersedes)."""
        t = tables.spot_calibrations
        values = {
            "model": row.model,
            "labelled": row.labelled,
            "record": json.dumps(row.record),
            "fitted_at": row.fitted_at.astimezone(UTC),
        }
        with self.engine.begin() as conn:
            insert: Any = (
                postgresql.insert(t) if conn.dialect.name == "postgresql" else sqlite.insert(t)
            )
            conn.execute(
                insert.values(
                    site=row.site, spot=row.spot, role=row.role, **values
                ).on_conflict_do_update(index_elements=[t.c.site, t.c.spot, t.c.role], set_=values)
            )

    def for_site(self, site: str) -> list[SpotCalibrationRow]:
        t = tables.spot_calibrations
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.site == site).order_by(t.c.spot, t.c.role)
            ).mappings()
            return [
                SpotCalibrationRow(
                    r["site"],
                    r["spot"],
                    r["role"],
                    r["model"],
                    int(r["labelled"]),
                    json.loads(r["record"]),
                    r["fitted_at"],
                )
                for r in rows
            ]
