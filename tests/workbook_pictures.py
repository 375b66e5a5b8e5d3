"""Reading the pictures of a workbook's sheets back from the package, with openpyxl's own
drawing parser, for the picture tests (unit and S3)."""

import posixpath
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
from openpyxl.xml.functions import fromstring

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"


@dataclass(frozen=True)
class FoundPicture:
    row: int  # 1-based
    column: int  # 1-based
    width: int  # decoded pixels
    height: int


def _rels(z: zipfile.ZipFile, part: str) -> dict[str, str]:
    folder, _, name = part.rpartition("/")
    path = f"{folder}/_rels/{name}.rels"
    if path not in z.namelist():
        return {}
    tree = ElementTree.fromstring(z.read(path))
    out = {}
    for rel in tree.iter(f"{_PKG}Relationship"):
        target = rel.attrib["Target"]
        out[rel.attrib["Id"]] = (
            target.lstrip("/")
            if target.startswith("/")
            else posixpath.normpath(f"{folder}/{target}")
        )
    return out


def sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Sheet title -> part name, from the workbook and its relationships."""
    rels = _rels(z, "xl/workbook.xml")
    tree = ElementTree.fromstring(z.read("xl/workbook.xml"))
    return {s.attrib["name"]: rels[s.attrib[f"{_REL}id"]] for s in tree.iter(f"{_MAIN}sheet")}


def pictures_of(path: Path, title: str) -> list[FoundPicture]:
    """The pictures anchored on sheet ``title``, in drawing order."""
    with zipfile.ZipFile(path) as z:
        part = sheet_parts(z)[title]
        sheet = ElementTree.fromstring(z.read(part))
        drawing_el = sheet.find(f"{_MAIN}drawing")
        if drawing_el is None:
            return []
        drawing_part = _rels(z, part)[drawing_el.attrib[f"{_REL}id"]]
        drawing = SpreadsheetDrawing.from_tree(fromstring(z.read(drawing_part)))
        media = _rels(z, drawing_part)
        found = []
        for blip in drawing._blip_rels:
            image = cv2.imdecode(
                np.frombuffer(z.read(media[blip.embed]), dtype=np.uint8), cv2.IMREAD_COLOR
            )
            assert image is not None, f"{media[blip.embed]} is not a readable image"
            start = blip.anchor._from
            found.append(FoundPicture(start.row + 1, start.col + 1, image.shape[1], image.shape[0]))
        return found
