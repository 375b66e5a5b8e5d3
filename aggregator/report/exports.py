"""The person list beside the workbook as CSV and Parquet, for analysis tools that do not want
to parse a spreadsheet.

Same columns as the workbook's person list (its headers, in its order) with the spot first, one
row per person over all spots in the order events are read. Written a frame at a time as the
workbook reads them (a site-day can be a million people): the CSV is appended to, the Parquet
file gets one row group per frame. Both files appear under their final names only when the
workbook is complete (:meth:`PersonExports.publish`); a failed build leaves no partial export.

Free text from devices (the crop note) that looks like a formula is prefixed with ``'`` in the CSV,
which spreadsheet programs open as cells (the workbook quotes the same cells); the Parquet file
holds the text as it is.
"""

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aggregator.report.bulk_sheet import Column
from aggregator.report.excel_text import FORMULA_TRIGGERS

SPOT_HEADER = "Spot"
_CSV_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def export_paths(workbook: Path) -> tuple[Path, Path]:
    """``site-a.xlsx`` -> ``site-a.persons.csv``, ``site-a.persons.parquet``."""
    stem = workbook.with_suffix("")
    return stem.with_name(f"{stem.name}.persons.csv"), stem.with_name(
        f"{stem.name}.persons.parquet"
    )


def _arrow_type(column: Column) -> object:
    import pyarrow as pa

    return {
        "datetime": pa.timestamp("ms"),
        "integer": pa.int64(),
        "number": pa.float64(),
    }.get(column.kind, pa.string())


class PersonExports:
    """Writes the person rows of one workbook to a CSV and a Parquet file next to it."""

    def __init__(self, workbook: Path, columns: Sequence[Column]) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow is in the aggregator extra
            raise ImportError(
                "the CSV/Parquet exports need pyarrow: pip install 'footfall[aggregator]'"
            ) from exc
        self.columns = tuple(columns)
        self.csv_path, self.parquet_path = export_paths(workbook)
        self.headers = [SPOT_HEADER, *(c.header for c in self.columns)]
        self.schema = pa.schema(
            [pa.field(SPOT_HEADER, pa.string(), nullable=False)]
            + [pa.field(c.header, _arrow_type(c)) for c in self.columns]
        )
        self._csv_tmp = _partial(self.csv_path)
        self._parquet_tmp = _partial(self.parquet_path)
        self._csv = self._csv_tmp.open("w", encoding="utf-8", newline="")
        csv.writer(self._csv).writerow(self.headers)
        self._parquet = pq.ParquetWriter(self._parquet_tmp, self.schema, compression="zstd")
        self.rows = 0

    def append(self, frame: pd.DataFrame) -> None:
        """Rows of an event frame (with the workbook's ``_local`` time column)."""
        import pyarrow as pa

        out = pd.DataFrame({SPOT_HEADER: frame["spot"].astype(str)})
        for c in self.columns:
            out[c.header] = frame[c.source].to_numpy()
        # The local time is wall-clock time without a zone, as in the workbook.
        time_cols = [c.header for c in self.columns if c.kind == "datetime"]
        for name in time_cols:
            out[name] = pd.to_datetime(out[name]).astype("datetime64[ms]")
        table = pa.Table.from_pandas(out, schema=self.schema, preserve_index=False)
        for c in self.columns:
            if c.kind == "free_text":
                out[c.header] = out[c.header].map(_inert)
        out.to_csv(self._csv, header=False, index=False, date_format=_CSV_TIME_FORMAT)
        self._parquet.write_table(table)
        self.rows += len(out)

    def publish(self) -> list[Path]:
        """Close both files and move them to their final names."""
        self._close()
        for tmp, final in ((self._csv_tmp, self.csv_path), (self._parquet_tmp, self.parquet_path)):
            tmp.chmod(0o644)
            tmp.replace(final)
        return [self.csv_path, self.parquet_path]

    def discard(self) -> None:
        self._close()
        self._csv_tmp.unlink(missing_ok=True)
        self._parquet_tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if not self._csv.closed:
            self._csv.close()
        if self._parquet.is_open:
            self._parquet.close()


def _inert(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _partial(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    return Path(name)
