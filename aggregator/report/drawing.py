"""The package parts that put pictures on a streamed sheet: a drawing part with one anchored
picture per thumbnail, its relationships to the JPEGs under ``xl/media/``, the sheet's
relationship to the drawing, and the content types.

openpyxl writes its own drawings (the Charts sheet) and media; the parts added here take the next
free numbers after those so nothing it wrote is overwritten. Each picture is anchored to its cell
with a two-cell anchor that moves and sizes with the cell, so filtering the person list hides the
pictures of the hidden rows along with them.
"""

import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.report.excel_text import xml_text
from aggregator.report.thumbnails import Picture

DRAWING_REL_ID = "rIdPersonPictures"  # the sheet's relationship id of its drawing
_EMU_PER_PX = 9525
_MARGIN_EMU = 2 * _EMU_PER_PX
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_DRAWING_TYPE = f"{_REL_NS}/drawing"
_IMAGE_TYPE = f"{_REL_NS}/image"
_DRAWING_CONTENT = "application/vnd.openxmlformats-officedocument.drawing+xml"
_RELS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
)


@dataclass(frozen=True)
class SheetPictures:
    """The pictures of one sheet, all in one (0-based) column."""

    column: int
    pictures: Sequence[Picture]


def _highest(names: Iterable[str], pattern: str) -> int:
    found = [int(m.group(1)) for n in names if (m := re.fullmatch(pattern, n))]
    return max(found, default=0)


def sheet_rels_path(sheet_part: str) -> str:
    """``xl/worksheets/sheet3.xml`` -> ``xl/worksheets/_rels/sheet3.xml.rels``."""
    folder, _, name = sheet_part.rpartition("/")
    return f"{folder}/_rels/{name}.rels"


class PictureParts:
    """Plans and writes the added parts of one package; ``existing`` are the names openpyxl wrote."""

    def __init__(self, existing: Sequence[str], sheets: Mapping[str, SheetPictures]) -> None:
        self.sheets = {part: s for part, s in sheets.items() if s.pictures}
        drawing_no = _highest(existing, r"xl/drawings/drawing(\d+)\.xml")
        self.media_no = _highest(existing, r"xl/media/image(\d+)\.\w+")
        self.drawing_of: dict[str, str] = {}
        for part in self.sheets:
            drawing_no += 1
            self.drawing_of[part] = f"xl/drawings/drawing{drawing_no}.xml"
        self.sheet_rels = {sheet_rels_path(p): p for p in self.sheets}

    def patch_content_types(self, xml: str) -> str:
        added = "".join(
            f'<Override PartName="/{d}" ContentType="{_DRAWING_CONTENT}"/>'
            for d in self.drawing_of.values()
        )
        if self.sheets and not re.search(r'<Default[^>]*Extension="jpeg"', xml):
            added = '<Default Extension="jpeg" ContentType="image/jpeg"/>' + added
        return xml.replace("</Types>", added + "</Types>")

    def patch_sheet_rels(self, rels_path: str, xml: str) -> str:
        """Add the drawing to relationships openpyxl already wrote for the sheet."""
        return xml.replace("</Relationships>", self._drawing_rel(rels_path) + "</Relationships>")

    def write_new_parts(self, dst: zipfile.ZipFile, existing: Sequence[str]) -> None:
        for rels_path in self.sheet_rels:
            if rels_path not in existing:
                dst.writestr(
                    rels_path, _RELS_HEAD + self._drawing_rel(rels_path) + "</Relationships>"
                )
        for part, sheet in self.sheets.items():
            drawing = self.drawing_of[part]
            anchors, rels = [], []
            for n, pic in enumerate(sheet.pictures, start=1):
                self.media_no += 1
                media = f"xl/media/image{self.media_no}.jpeg"
                dst.writestr(media, pic.thumbnail.jpeg, compress_type=zipfile.ZIP_STORED)
                rels.append(
                    f'<Relationship Id="rId{n}" Type="{_IMAGE_TYPE}" Target="../media/image{self.media_no}.jpeg"/>'
                )
                anchors.append(_anchor(pic, sheet.column, n))
            dst.writestr(
                drawing,
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
                'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
                f'xmlns:r="{_REL_NS}">' + "".join(anchors) + "</xdr:wsDr>",
            )
            folder, _, name = drawing.rpartition("/")
            dst.writestr(
                f"{folder}/_rels/{name}.rels", _RELS_HEAD + "".join(rels) + "</Relationships>"
            )

    def _drawing_rel(self, rels_path: str) -> str:
        drawing = self.drawing_of[self.sheet_rels[rels_path]]
        return f'<Relationship Id="{DRAWING_REL_ID}" Type="{_DRAWING_TYPE}" Target="/{drawing}"/>'


def _attr(text: str) -> str:
    return xml_text(text).replace('"', "&quot;")


def _anchor(pic: Picture, column: int, n: int) -> str:
    w = pic.thumbnail.width * _EMU_PER_PX
    h = pic.thumbnail.height * _EMU_PER_PX
    row = pic.row - 1
    return (
        "<xdr:twoCellAnchor>"
        f"<xdr:from><xdr:col>{column}</xdr:col><xdr:colOff>{_MARGIN_EMU}</xdr:colOff>"
        f"<xdr:row>{row}</xdr:row><xdr:rowOff>{_MARGIN_EMU}</xdr:rowOff></xdr:from>"
        f"<xdr:to><xdr:col>{column}</xdr:col><xdr:colOff>{_MARGIN_EMU + w}</xdr:colOff>"
        f"<xdr:row>{row}</xdr:row><xdr:rowOff>{_MARGIN_EMU + h}</xdr:rowOff></xdr:to>"
        f'<xdr:pic><xdr:nvPicPr><xdr:cNvPr id="{n + 1}" name="Picture {n}" descr="{_attr(pic.name)}"/>'
        '<xdr:cNvPicPr><a:picLocks noChangeAspect="1"/></xdr:cNvPicPr></xdr:nvPicPr>'
        f'<xdr:blipFill><a:blip r:embed="rId{n}"/><a:stretch><a:fillRect/></a:stretch></xdr:blipFill>'
        f'<xdr:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="{w}" cy="{h}"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr></xdr:pic>'
        "<xdr:clientData/></xdr:twoCellAnchor>"
    )
