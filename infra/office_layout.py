"""How LibreOffice lays out a workbook for printing: per sheet, where its page breaks fall and
where its charts are, as JSON on stdout.

Run with the Python that has LibreOffice's ``uno`` module (Debian's ``/usr/bin/python3`` with
``python3-uno``), not the project's virtual environment:

    /usr/bin/python3 infra/office_layout.py WORKBOOK.xlsx

Output: ``{"sheets": [{"name", "breaks": [y, ...], "charts": [[top, bottom], ...]}]}``, lengths in
1/100 mm from the sheet's top. The workbook tests use it to check that no page break cuts a chart.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uno
from com.sun.star.beans import PropertyValue


def _connect(pipe: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> Any:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            return resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
        except Exception as exc:  # the bridge raises its own NoConnectException
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "LibreOffice did not start (is libreoffice-calc installed?)"
                ) from exc
            time.sleep(0.2)


def layout(path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="office-layout-") as profile:
        pipe = f"footfall-layout-{os.getpid()}"
        proc = subprocess.Popen(
            [
                "soffice",
                "--headless",
                "--invisible",
                "--norestore",
                f"-env:UserInstallation={Path(profile).as_uri()}",
                f"--accept=pipe,name={pipe};urp;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ctx = _connect(pipe, proc)
            desktop = ctx.ServiceManager.createInstanceWithContext(
                "com.sun.star.frame.Desktop", ctx
            )
            hidden = PropertyValue()
            hidden.Name, hidden.Value = "Hidden", True
            doc = desktop.loadComponentFromURL(path.resolve().as_uri(), "_blank", 0, (hidden,))
            sheets = []
            for i in range(doc.Sheets.Count):
                sheet = doc.Sheets.getByIndex(i)
                cursor = sheet.createCursor()
                cursor.gotoEndOfUsedArea(False)
                last_row = max(
                    [cursor.getRangeAddress().EndRow] + [a.EndRow for a in sheet.getPrintAreas()]
                )
                # Breaks run on through the empty rows to the sheet's end; only those inside
                # what is printed matter (and reading a million of them takes a minute).
                breaks = [
                    sheet.getCellByPosition(0, b.Position).Position.Y
                    for b in sheet.getRowPageBreaks()
                    if b.Position <= last_row + 64  # charts may reach below the cells
                ]
                page = sheet.DrawPage
                charts = []
                for k in range(page.Count):
                    shape = page.getByIndex(k)
                    top = shape.Position.Y
                    charts.append([top, top + shape.Size.Height])
                sheets.append({"name": sheet.Name, "breaks": breaks, "charts": charts})
            doc.close(True)
            return {"sheets": sheets}
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: office_layout.py WORKBOOK.xlsx")
    print(json.dumps(layout(Path(sys.argv[1]))))
    sys.stdout.flush()
    # The UNO bridge can crash while the interpreter tears it down; the answer is out already.
    os._exit(0)
