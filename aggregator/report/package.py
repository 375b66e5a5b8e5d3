"""Splicing streamed worksheets into the .xlsx package openpyxl wrote, and publishing atomically."""

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from openpyxl import Workbook

from aggregator.report.drawing import PictureParts, SheetPictures

SheetWriter = Callable[[IO[bytes]], None]


def save_with_streamed_sheets(
    workbook: Workbook,
    streamed: dict[str, SheetWriter],
    out_path: Path,
    tmpdir: Path,
    pictures: Mapping[str, SheetPictures] | None = None,
) -> None:
    """Save ``workbook``, replacing the XML of the sheets named in ``streamed`` by what their
    writer produces, and adding the ``pictures`` of streamed sheets (by title; such a sheet's
    writer must refer to :data:`~aggregator.report.drawing.DRAWING_REL_ID`). The file appears at
    ``out_path`` only when complete (rename), so a reader never sees half a workbook and a failed
    build leaves the previous file in place."""
    with tempfile.TemporaryDirectory(dir=tmpdir) as work:
        plain = Path(work) / "openpyxl.xlsx"
        workbook.save(plain)
        # openpyxl assigns each sheet its part name while saving.
        part_of = {ws.title: ws.path.lstrip("/") for ws in workbook.worksheets}
        replace = {part_of[title]: writer for title, writer in streamed.items()}
        with zipfile.ZipFile(plain) as src:
            existing = src.namelist()
        added = PictureParts(existing, {part_of[title]: p for title, p in (pictures or {}).items()})
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{out_path.name}.", suffix=".partial", dir=out_path.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with (
                zipfile.ZipFile(plain) as src,
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst,
            ):
                for info in src.infolist():
                    if info.filename in replace:
                        with dst.open(info.filename, "w", force_zip64=True) as out:
                            replace[info.filename](out)
                    elif info.filename == "[Content_Types].xml":
                        text = src.read(info).decode("utf-8")
                        dst.writestr(info.filename, added.patch_content_types(text))
                    elif info.filename in added.sheet_rels:
                        text = src.read(info).decode("utf-8")
                        dst.writestr(info.filename, added.patch_sheet_rels(info.filename, text))
                    else:
                        with src.open(info) as data, dst.open(info.filename, "w") as out:
                            shutil.copyfileobj(data, out)
                added.write_new_parts(dst, existing)
            tmp.chmod(0o644)
            tmp.replace(out_path)
        finally:
            tmp.unlink(missing_ok=True)
