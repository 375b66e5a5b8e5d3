"""Checks a demo output folder: the workbook exists, names every spot the store has, and its
people counts equal the events stored. ``python -m tests.e2e.check_demo out/demo`` (used by CI
after ``make demo``); the e2e test calls :func:`check` too."""

import sys
from pathlib import Path

import sqlalchemy as sa
from openpyxl import load_workbook

from aggregator.demo import DEMO_SITE


def check(out_dir: Path) -> dict[str, int]:
    """Per-spot people in the workbook's Summary; raises AssertionError on any mismatch."""
    workbook_path = out_dir / f"{DEMO_SITE}.xlsx"
    assert workbook_path.is_file(), f"no workbook at {workbook_path}"
    engine = sa.create_engine(f"sqlite:///{out_dir / 'footfall.db'}")
    with engine.connect() as conn:
        stored: dict[str, int] = dict(
            conn.execute(
                sa.text("SELECT spot, count(*) FROM events WHERE site = :s GROUP BY spot"),
                {"s": DEMO_SITE},
            ).all()
        )
    engine.dispose()
    summary = load_workbook(workbook_path, read_only=True)["Summary"]
    rows = list(summary.iter_rows(values_only=True))
    header = list(rows[0])
    spot_col, people_col = header.index("Spot"), header.index("People")
    counted = {str(r[spot_col]): int(r[people_col]) for r in rows[1:] if isinstance(r[0], int)}
    assert counted == stored, f"workbook says {counted}, the store holds {stored}"
    assert len(counted) >= 2 and sum(counted.values()) > 0, f"too little in the demo: {counted}"
    return counted


if __name__ == "__main__":
    result = check(Path(sys.argv[1] if len(sys.argv) > 1 else "out/demo"))
    print(f"demo workbook ok: {sum(result.values())} people at {len(result)} spots: {result}")
