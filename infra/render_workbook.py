"""A workbook as a reader sees it printed: LibreOffice turns it into a PDF, poppler into PNG pages.

    python -m infra.render_workbook out/demo/demo-high-street.xlsx --png-dir docs/workbook

Every sheet of the workbook names itself in its page header (right), so the pages of each sheet
can be counted from the PDF's text; where LibreOffice puts its page breaks and charts comes from
:mod:`infra.office_layout`, run by the Python that has LibreOffice's ``uno`` module.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LAYOUT_SCRIPT = Path(__file__).with_name("office_layout.py")
UNO_PYTHON = Path("/usr/bin/python3")


class RenderError(RuntimeError):
    """LibreOffice or poppler is missing or failed."""


def missing_tools() -> list[str]:
    """What rendering needs and this machine lacks (Debian packages named)."""
    missing = []
    if shutil.which("soffice") is None:
        missing.append("soffice (libreoffice-calc)")
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        missing.append("pdftotext/pdftoppm (poppler-utils)")
    check = (
        subprocess.run([str(UNO_PYTHON), "-c", "import uno"], capture_output=True, check=False)
        if UNO_PYTHON.exists()
        else None
    )
    if check is None or check.returncode != 0:
        missing.append(f"the uno module for {UNO_PYTHON} (python3-uno)")
    return missing


def to_pdf(workbook: Path, out_dir: Path) -> Path:
    """The workbook printed to ``out_dir/<name>.pdf`` by LibreOffice headless."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="render-profile-") as profile:
        done = subprocess.run(
            [
                "soffice",
                "--headless",
                "--norestore",
                f"-env:UserInstallation={Path(profile).as_uri()}",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out_dir),
                str(workbook),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    pdf = out_dir / f"{workbook.stem}.pdf"
    if done.returncode != 0 or not pdf.is_file():
        raise RenderError(f"LibreOffice could not convert {workbook}: {done.stderr.strip()}")
    return pdf


def page_sheets(pdf: Path) -> list[str]:
    """The sheet each page of ``pdf`` belongs to, read from the page header's right side."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    sheets = []
    for page in text.split("\f"):
        lines = [line for line in page.splitlines() if line.strip()]
        if not lines:
            continue
        sheets.append(re.split(r"\s{2,}", lines[0].strip())[-1])
    return sheets


def pages_per_sheet(pdf: Path) -> Counter[str]:
    return Counter(page_sheets(pdf))


@dataclass(frozen=True)
class SheetLayout:
    name: str
    breaks: list[int]  # y of each page break, 1/100 mm
    charts: list[tuple[int, int]]  # (top, bottom) of each chart, 1/100 mm

    def cut_charts(self) -> list[tuple[int, int]]:
        """Charts a page break runs through."""
        return [c for c in self.charts if any(c[0] < y < c[1] for y in self.breaks)]


def layout(workbook: Path) -> list[SheetLayout]:
    done = subprocess.run(
        [str(UNO_PYTHON), str(LAYOUT_SCRIPT), str(workbook)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(f"LibreOffice could not lay out {workbook}: {done.stderr.strip()}")
    sheets = json.loads(done.stdout)["sheets"]
    return [
        SheetLayout(s["name"], list(s["breaks"]), [(a, b) for a, b in s["charts"]]) for s in sheets
    ]


def to_png(pdf: Path, out_dir: Path, resolution: int = 70) -> list[Path]:
    """One PNG per page, ``page-1.png``...; earlier pages in ``out_dir`` are removed first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("page-*.png"):
        old.unlink()
    subprocess.run(
        ["pdftoppm", "-r", str(resolution), "-png", str(pdf), str(out_dir / "page")], check=True
    )
    pages = sorted(out_dir.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    # pdftoppm pads the numbers to the page count's width; plain numbers sort and link simply.
    renamed = []
    for k, page in enumerate(pages, start=1):
        target = out_dir / f"page-{k}.png"
        page.rename(target)
        renamed.append(target)
    return renamed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workbook", type=Path)
    parser.add_argument("--png-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.workbook.is_file():
        print(f"error: {args.workbook}: no such workbook; run `make demo` first", file=sys.stderr)
        return 1
    if missing := missing_tools():
        print(f"error: rendering needs {', '.join(missing)}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as work:
        try:
            pdf = to_pdf(args.workbook, Path(work))
            pages = to_png(pdf, args.png_dir)
            counts = pages_per_sheet(pdf)
        except RenderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(
        f"{len(pages)} page(s) in {args.png_dir}: "
        + ", ".join(f"{s} {n}" for s, n in counts.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
