"""The sites table: each site's display name and time zone as an aggregator's configuration
declares them. The service and ``deliver`` write them; ``report`` without that configuration
reads a site's time zone from here instead of falling back to UTC."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.store import tables


@dataclass(frozen=True)
class SiteRecord:
    site: str
    name: str | None
    timezone: str  # IANA name, validated by the configuration that declared it


class SitesTable:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def register(self, sites: Sequence[SiteRecord], at: datetime | None = None) -> None:
        """Insert or update each site (the configuration is the authority on them)."""
        if not sites:
            return
        when = at or datetime.now(UTC)
        t = tables.sites
        with self.engine.begin() as conn:
            insert: Any = (
                postgresql.insert(t) if conn.dialect.name == "postgresql" else sqlite.insert(t)
            )
            for s in sites:
                row = {"name": s.name, "timezone": s.timezone, "registered_at": when}
                conn.execute(
                    insert.values(site=s.site, **row).on_conflict_do_update(
                        index_elements=[t.c.site], set_=row
                    )
                )

    def get(self, site: str) -> SiteRecord | None:
        t = tables.sites
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.site == site)).mappings().first()
        return None if row is None else SiteRecord(row["site"], row["name"], row["timezone"])
