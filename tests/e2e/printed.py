"""What a printed workbook must look like, checked on LibreOffice's own output."""

from pathlib import Path

from infra.render_workbook import layout, pages_per_sheet, to_pdf


def check_printed(workbook: Path, work: Path) -> None:
    """The Summary prints on one page and no page break runs through a chart (used by the demo
    test too)."""
    pages = pages_per_sheet(to_pdf(workbook, work / "pdf"))
    assert pages["Summary"] == 1, pages
    assert pages["Charts"] >= 1, pages
    sheets = layout(workbook)
    assert any(s.charts for s in sheets)
    cut = {s.name: s.cut_charts() for s in sheets if s.cut_charts()}
    assert not cut, f"page breaks through charts: {cut}"
