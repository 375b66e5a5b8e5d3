"""Streaming the person lists: worksheet XML written directly, a batch at a time.

openpyxl spends ~100 µs per row even in write-only mode, which makes a million-person site-day
take minutes. The person list is the only large part of a workbook and its cells are simple
(inline strings and numbers with a handful of styles), so it is rendered here with plain string
formatting into temporary files and spliced into the package openpyxl writes for everything else
(see :mod:`aggregator.report.package`). Everything small - summary, charts, hourly tables, About -
stays with openpyxl.
"""

import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from aggregator.report.excel_text import FORMULA_TRIGGERS, wrapped_lines, xml_text

EXCEL_MAX_ROWS = 1_048_576
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "ns")
_NS_PER_DAY = 86_400 * 10**9

Kind = Literal["text", "free_text", "number", "integer", "datetime", "link"]


@dataclass(frozen=True)
class Column:
    header: str
    source: str  # column of the event frame
    kind: Kind
    width: float
    number_format: str | None = None  # for number / datetime
    decimals: int = 3
    nullable: bool = False  # the contract guarantees a value unless this is set


def column_letter(index: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass(frozen=True)
class Styles:
    """Cell style ids (the ``s`` attribute) registered in the openpyxl workbook."""

    header: int
    quote_prefix: int  # text that looks like a formula, kept as text
    by_format: dict[str, int]


def _text_cells(values: pd.Series, styles: Styles, free: bool) -> list[str]:
    out = []
    quoted = styles.quote_prefix
    for v in values.tolist():
        if v is None or v != v:  # None or NaN
            out.append("<c/>")
        elif free:
            s = xml_text(str(v))
            style = f' s="{quoted}"' if s.startswith(FORMULA_TRIGGERS) else ""
            out.append(f'<c t="inlineStr"{style}><is><t xml:space="preserve">{s}</t></is></c>')
        else:
            out.append(f'<c t="inlineStr"><is><t>{v}</t></is></c>')
    return out


def _number_cells(values: np.ndarray, style: int, fmt: str) -> list[str]:
    head, tail = f'<c s="{style}"><v>', "</v></c>"
    return [("<c/>" if x != x else head + (fmt % x) + tail) for x in values.tolist()]


def render_cells(
    frame: pd.DataFrame, columns: Sequence[Column], styles: Styles, link_base: str | None
) -> list[str]:
    """The cells of each row (without the ``<row>`` element), one string per row.

    Columns that always hold a value are formatted straight into one ``%`` template per row (the
    cheapest way to build a million rows in Python); columns that may be empty are rendered cell
    by cell first and enter the template as text.
    """
    parts: list[str] = []
    values: list[Sequence[object]] = []
    for col in columns:
        series = frame[col.source]
        style = styles.by_format.get(col.number_format or "")
        if col.kind == "text" and not col.nullable:
            parts.append('<c t="inlineStr"><is><t>%s</t></is></c>')
            values.append(series.tolist())
        elif col.kind == "datetime":
            naive = series.to_numpy(dtype="datetime64[ns]")
            parts.append(f'<c s="{style}"><v>%.10f</v></c>')
            values.append(((naive - _EXCEL_EPOCH).astype(np.int64) / _NS_PER_DAY).tolist())
        elif col.kind == "integer":
            parts.append("<c><v>%d</v></c>")
            values.append(series.tolist())
        elif col.kind == "number" and not col.nullable:
            parts.append(f'<c s="{style}"><v>%.{col.decimals}f</v></c>')
            values.append(series.to_numpy(dtype=np.float64).tolist())
        else:
            parts.append("%s")
            if col.kind in ("text", "free_text"):
                values.append(_text_cells(series, styles, free=col.kind == "free_text"))
            elif col.kind == "link":
                values.append(_link_cells(series, link_base))
            else:
                numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
                values.append(_number_cells(numbers, style or 0, f"%.{col.decimals}f"))
    template = "".join(parts)
    return [template % row for row in zip(*values, strict=True)] if values else []


def _link_cells(values: pd.Series, base: str | None) -> list[str]:
    if base is None:
        return [
            ("<c/>" if v is None or v != v else f'<c t="inlineStr"><is><t>{v}</t></is></c>')
            for v in values.tolist()
        ]
    # Keys use a safe charset (contract), the base comes from configuration: quote doubling is
    # all a HYPERLINK string literal needs.
    prefix = xml_text(base.replace('"', '""'))
    return [
        "<c/>"
        if v is None or v != v
        else f'<c t="str"><f>HYPERLINK("{prefix}{v}","{v}")</f><v>{v}</v></c>'
        for v in values.tolist()
    ]


@dataclass
class SheetPart:
    """One sheet's worth of person rows: the first rows in memory, the rest in a temp file."""

    head: list[str] = field(default_factory=list)
    body: IO[str] | None = None
    rows: int = 0
    tall_head_rows: set[int] = field(default_factory=set)  # rows in ``head`` holding a picture


class PersonListWriter:
    """Collects the rendered person rows of one spot, split into parts of at most
    ``EXCEL_MAX_ROWS - 1`` data rows (one row is the header)."""

    def __init__(
        self,
        tmpdir: Path,
        keep_in_memory: int,
        max_rows: int = EXCEL_MAX_ROWS - 1,
        tall_row_height: float = 40.0,
    ) -> None:
        self.tmpdir = tmpdir
        self.keep = keep_in_memory
        self.max_rows = max_rows
        self.tall_row_height = tall_row_height
        self.parts: list[SheetPart] = [SheetPart()]
        self.total = 0  # rows appended so far, over all parts

    def append(self, cells: list[str], tall: Collection[int] = ()) -> None:
        """Append rows; the rows at offsets ``tall`` into ``cells`` hold a picture and are made
        ``tall_row_height`` points high."""
        tall_rows = {self.total + k for k in tall}  # person indices
        start_total = self.total
        self.total += len(cells)
        i = 0
        while i < len(cells):
            part = self.parts[-1]
            if part.rows >= self.max_rows:
                part = SheetPart()
                self.parts.append(part)
            room = self.max_rows - part.rows
            chunk = cells[i : i + room]
            i += len(chunk)
            first_row = part.rows + 2  # data starts below the header row
            # Person index of the chunk's first row, to find its tall rows.
            index = start_total + i - len(chunk)
            if part.rows < self.keep:
                take = min(self.keep - part.rows, len(chunk))
                part.head.extend(chunk[:take])
                part.tall_head_rows.update(
                    first_row + k for k in range(take) if index + k in tall_rows
                )
                part.rows += take
                chunk = chunk[take:]
                first_row += take
                index += take
            if chunk:
                if part.body is None:
                    # Lives as long as the writer; close() releases it.
                    part.body = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.tmpdir)  # noqa: SIM115
                if tall_rows:
                    tall_attr = f' ht="{self.tall_row_height}" customHeight="1"'
                    rows = "".join(
                        f'<row r="{first_row + k}"{tall_attr if index + k in tall_rows else ""}>{c}</row>'
                        for k, c in enumerate(chunk)
                    )
                else:
                    rows = "".join(
                        f'<row r="{first_row + k}">{c}</row>' for k, c in enumerate(chunk)
                    )
                part.body.write(rows)
                part.rows += len(chunk)

    def close(self) -> None:
        for part in self.parts:
            if part.body is not None:
                part.body.close()


_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
)


def header_cells(headers: Sequence[str], style: int, first_col: int = 1) -> str:
    return "".join(
        f'<c r="{column_letter(first_col + i)}1" t="inlineStr" s="{style}"><is><t>{xml_text(h)}</t></is></c>'
        for i, h in enumerate(headers)
    )


@dataclass(frozen=True)
class PictureColumn:
    """The column of a sheet's pictures (drawn over its cells) and the drawing's relationship."""

    column: int  # 1-based
    header: str
    width: float
    row_height: float
    drawing_rel_id: str


def write_sheet(
    out: IO[bytes],
    part: SheetPart,
    columns: Sequence[Column],
    styles: Styles,
    side_rows: list[str] | None = None,
    side_widths: Sequence[float] = (),
    side_first_col: int = 0,
    title: str = "",
    pictures: PictureColumn | None = None,
) -> None:
    """Write one worksheet: frozen header row, column widths, person rows, autofilter, and the
    print setup of the other sheets (landscape, fit to width, ``title`` in the page header).

    ``side_rows`` are extra cells (with explicit references) for rows 1..len(side_rows), placed to
    the right of the person list; the hourly table goes there. With ``pictures``, the sheet gets a
    header and width for the picture column and refers to its drawing.
    """
    side_rows = side_rows or []
    n_rows = max(part.rows + 1, len(side_rows))
    last_col = side_first_col + len(side_widths) - 1 if side_widths else len(columns)
    widths = [c.width for c in columns]
    cols_xml = "".join(
        f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
        for i, w in enumerate(widths, start=1)
    )
    if pictures is not None:
        p = pictures.column
        cols_xml += f'<col min="{p}" max="{p}" width="{pictures.width}" customWidth="1"/>'
    cols_xml += "".join(
        f'<col min="{side_first_col + i}" max="{side_first_col + i}" width="{w}" customWidth="1"/>'
        for i, w in enumerate(side_widths)
    )
    head = (
        _SHEET_HEAD
        + '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
        + f'<dimension ref="A1:{column_letter(last_col)}{n_rows}"/>'
        + '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
        + 'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft"/></sheetView></sheetViews>'
        + '<sheetFormatPr defaultRowHeight="15"/>'
        + f"<cols>{cols_xml}</cols><sheetData>"
    )
    out.write(head.encode("utf-8"))
    row1 = header_cells([c.header for c in columns], styles.header)
    if pictures is not None:
        row1 += header_cells([pictures.header], styles.header, pictures.column)
    row1 += side_rows[0] if side_rows else ""
    # A header row as tall as its longest header wraps to: never cut at the column's width.
    lines = max(wrapped_lines(c.header, c.width) for c in columns)
    out.write(f'<row r="1" ht="{15 * lines + 2}" customHeight="1">{row1}</row>'.encode())
    buffered = []
    tall = f' ht="{pictures.row_height}" customHeight="1"' if pictures is not None else ""
    for k in range(1, max(len(part.head) + 1, len(side_rows))):
        cells = part.head[k - 1] if k - 1 < len(part.head) else ""
        side = side_rows[k] if k < len(side_rows) else ""
        attr = tall if k + 1 in part.tall_head_rows else ""
        buffered.append(f'<row r="{k + 1}"{attr}>{cells}{side}</row>')
    out.write("".join(buffered).encode("utf-8"))
    if part.body is not None:
        part.body.seek(0)
        while chunk := part.body.read(1 << 20):
            out.write(chunk.encode("utf-8"))
    tail = "</sheetData>"
    if part.rows:
        tail += f'<autoFilter ref="A1:{column_letter(len(columns))}{part.rows + 1}"/>'
    tail += (
        '<pageMargins left="0.5" right="0.5" top="0.6" bottom="0.6" header="0.25" footer="0.25"/>'
        '<pageSetup paperSize="9" orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
        f"<headerFooter><oddHeader>&amp;L{xml_text(title.replace('&', '&&'))}&amp;R&amp;A</oddHeader>"
        "<oddFooter>&amp;RPage &amp;P of &amp;N</oddFooter></headerFooter>"
    )
    if pictures is not None:  # after the print setup: the schema's order
        tail += f'<drawing r:id="{pictures.drawing_rel_id}"/>'
    out.write((tail + "</worksheet>").encode("utf-8"))
