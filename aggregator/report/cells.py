"""The workbook's cell formats and styles, and writing the cells of the sheets openpyxl makes
(Summary, Charts, About); the person lists are streamed (:mod:`aggregator.report.bulk_sheet`)."""

from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.report.bulk_sheet import Styles, column_letter
from aggregator.report.excel_text import is_formula_like, wrapped_lines

DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
PERCENT_FORMAT = "0.0%"
WHOLE_PERCENT_FORMAT = "0%"
DECIMAL_FORMAT = "0.0"
QUALITY_FORMAT = "0.00"
HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
HEADER_FONT = Font(bold=True)


def register_styles(wb: Workbook) -> Styles:
    """Register the styles the streamed sheets use and learn their ids.

    The probe cells live on a scratch sheet that is removed again; openpyxl keeps every style it
    has seen, so the ids stay valid in the saved styles part.
    """
    probe = wb.create_sheet("_styles")
    heading = probe.cell(1, 1, "h")
    heading.font = HEADER_FONT
    heading.fill = HEADER_FILL
    heading.alignment = Alignment(wrap_text=True, vertical="top")
    quoted = probe.cell(1, 2, "q")
    quoted.quotePrefix = True
    by_format = {}
    for i, fmt in enumerate(
        (DATETIME_FORMAT, PERCENT_FORMAT, DECIMAL_FORMAT, QUALITY_FORMAT), start=3
    ):
        cell = probe.cell(1, i, 0)
        cell.number_format = fmt
        by_format[fmt] = cell.style_id
    styles = Styles(header=heading.style_id, quote_prefix=quoted.style_id, by_format=by_format)
    wb.remove(probe)
    return styles


def put(ws: Worksheet, row: int, col: int, value: object, number_format: str | None = None) -> None:
    """Write a cell; text always stays text (never a formula), formula-looking text is quoted."""
    cell = ws.cell(row, col)
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True
    else:
        cell.value = value
    if number_format:
        cell.number_format = number_format


def print_setup(ws: Worksheet, title: str, *, title_rows: str | None = None) -> None:
    """Landscape, fit to the page's width (as many pages down as needed), the header rows
    repeated on each page, and the workbook's title and the sheet's name in the page header."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.page_margins.left = ws.page_margins.right = 0.5
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.page_margins.header = ws.page_margins.footer = 0.25
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    if title_rows:
        ws.print_title_rows = title_rows
    ws.oddHeader.left.text = title.replace("&", "&&")
    ws.oddHeader.right.text = "&A"
    ws.oddFooter.right.text = "Page &P of &N"


def header(ws: Worksheet, headers: Sequence[str], widths: Sequence[float], row: int = 1) -> None:
    for i, (text, width) in enumerate(zip(headers, widths, strict=True), start=1):
        put(ws, row, i, text)
        cell = ws.cell(row, i)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.column_dimensions[column_letter(i)].width = width


def column_widths(
    headers: Sequence[tuple[str, float, str | None]], spots: Sequence[str]
) -> list[float]:
    """Each column's width; the spot's name sets the Spot column's, up to a point where it
    wraps instead."""
    spot_width = min(32.0, max([18.0] + [len(spot) + 2.0 for spot in spots]))
    return [spot_width if h == "Spot" else w for h, w, _ in headers]


def notes_below(
    ws: Worksheet, notes: Sequence[str], first_row: int, widths: Sequence[float]
) -> None:
    """One note per row from ``first_row``, each merged across the table's width and as tall
    as its wrapped lines (neither LibreOffice nor Excel grows a row for wrapped text)."""
    total_width = sum(widths)
    for i, text in enumerate(notes, start=first_row):
        ws.merge_cells(start_row=i, start_column=1, end_row=i, end_column=len(widths))
        put(ws, i, 1, text)
        cell = ws.cell(i, 1)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[i].height = 15 * wrapped_lines(text, total_width)
