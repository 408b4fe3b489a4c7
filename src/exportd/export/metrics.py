"""Per-cell metrics: `metrics/metrics.xlsx`, `metrics/metrics.csv`, `metrics/metrics.json`.

One row per cell (an external polygon with its holes subtracted), numbered
as on the visualizations. The three writers share `image_rows`, which measures
one image's cells (in a worker process when there is a pool), and the column
table below. With `pixelToMicrometerScale` s, lengths are in µm (× s) and areas
in µm² (× s²); ratios have no unit. Values keep 6 significant digits.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import cells_of
from exportd.export.measure import MEASURE_NAMES, measure
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

Kind = Literal["text", "count", "length", "area", "ratio"]
Row = tuple[Any, ...]
SIGNIFICANT_DIGITS = 6
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Column:
    title: str  #: for people, e.g. "Feret Diameter Max"
    key: str  #: in metrics.json, e.g. "feretDiameterMax"
    kind: Kind
    meaning: str = ""  #: one line for metrics_guide.md


IDENTITY = (
    Column("Image", "image", "text", "the image's file name in `images/`"),
    Column("Image ID", "imageId", "text", "the image's id in the project"),
    Column("Polygon", "polygon", "count", "the cell's number in its image, as drawn on the visualization"),
    Column("Polygon ID", "polygonId", "text", "the external polygon's id"),
    Column("Class", "class", "text", "the polygon's class name"),
    Column("Holes", "holes", "count", "how many holes (internal polygons) were subtracted"),
)
MEASURED = (
    Column("Area", "area", "area", "area A of the outline minus its holes"),
    Column("Perimeter", "perimeter", "length", "length P of the outer outline"),
    Column("Perimeter with Holes", "perimeterWithHoles", "length", "P plus the length of every hole's outline"),
    Column("Equivalent Diameter", "equivalentDiameter", "length", "diameter of the circle of area A: √(4A/π)"),
    Column("Circularity", "circularity", "ratio", "4πA/P²: 1 for a circle, smaller for anything else"),
    Column("Feret Diameter Max", "feretDiameterMax", "length", "largest distance between two points of the outline"),
    Column("Feret Diameter Min", "feretDiameterMin", "length", "smallest distance between two parallel lines enclosing the cell"),
    Column("Feret Diameter Orthogonal", "feretDiameterOrthogonal", "length", "width of the cell perpendicular to the Feret max direction"),
    Column("Feret Aspect Ratio", "feretAspectRatio", "ratio", "Feret Diameter Max / Feret Diameter Min"),
    Column("Major Axis Length", "majorAxisLength", "length", "major axis of the ellipse with the cell's second moments of area"),
    Column("Minor Axis Length", "minorAxisLength", "length", "minor axis of that ellipse"),
    Column("Bounding Box Width", "boundingBoxWidth", "length", "width of the smallest axis-aligned box around the cell"),
    Column("Bounding Box Height", "boundingBoxHeight", "length", "height of that box"),
    Column("Extent", "extent", "ratio", "A / (box width × box height)"),
    Column("Compactness", "compactness", "ratio", "P²/(4πA) = 1 / Circularity"),
    Column("Convexity", "convexity", "ratio", "perimeter of the convex hull / P: 1 when convex"),
    Column("Solidity", "solidity", "ratio", "A / area of the convex hull: 1 when convex and without holes"),
    Column("Sphericity", "sphericity", "ratio",
           "2√(πA)/P = π × Equivalent Diameter / P: 1 for a circle (the square root of Circularity)"),
)
COLUMNS = IDENTITY + MEASURED
assert len(MEASURED) == len(MEASURE_NAMES)


def unit(kind: Kind, scale: float | None) -> str:
    """`px`, `px²`, `µm` or `µm²` for lengths and areas; empty otherwise."""
    base = "µm" if scale else "px"
    return {"length": base, "area": f"{base}²"}.get(kind, "")


def heading(column: Column, scale: float | None, prefix: str = "") -> str:
    """`Area (µm²)`: the title with its unit, if it has one."""
    suffix = unit(column.kind, scale)
    return f"{prefix}{column.title} ({suffix})" if suffix else f"{prefix}{column.title}"


def image_rows(named: tuple[ImageData, str], scale: float | None) -> tuple[list[Row], list[str]]:
    """One image's rows, in `COLUMNS` order, and its warnings (runs in a worker process)."""
    image, file_name = named
    cells, warnings = cells_of(image)
    factors = [_factor(column.kind, scale) for column in MEASURED]
    rows = []
    for cell in cells:
        values = (_significant(v * f) for v, f in zip(measure(cell.shape).values(), factors, strict=True))
        polygon = cell.polygon
        rows.append((file_name, image.id, cell.number, polygon.id, polygon.class_name, len(cell.holes), *values))
    return rows, warnings


class Summary:
    """Per-image cell counts, the mean of each metric and the smallest and largest Area, and the
    same over all images.

    Columns: Image, Image ID, Polygons, Mean Area, Min Area, Max Area, then the mean of every other
    metric (`keys` names them in metrics.json: `area`, `minArea`, `maxArea`, `perimeter`, …).
    """

    def __init__(self, scale: float | None) -> None:
        area, *rest = MEASURED
        self.headings = ["Image", "Image ID", "Polygons", heading(area, scale, "Mean "),
                         heading(area, scale, "Min "), heading(area, scale, "Max "),
                         *(heading(c, scale, "Mean ") for c in rest)]
        self.keys = ["image", "imageId", "polygons", area.key, "minArea", "maxArea", *(c.key for c in rest)]
        self._count = 0
        self._sums = [0.0] * len(MEASURED)
        self._areas: list[float] = []  #: the smallest and largest area so far

    def add(self, image: ImageData, file_name: str, rows: Sequence[Row]) -> Row:
        sums = [math.fsum(row[len(IDENTITY) + k] for row in rows) for k in range(len(MEASURED))]
        areas = [row[len(IDENTITY)] for row in rows if row[len(IDENTITY)] is not None]
        self._count += len(rows)
        self._sums = [a + b for a, b in zip(self._sums, sums, strict=True)]
        if areas:
            self._areas = [min(areas + self._areas), max(areas + self._areas)]
        return (file_name, image.id, len(rows), *self._values(sums, len(rows), areas))

    def overall(self) -> Row:
        return ("All images", "", self._count, *self._values(self._sums, self._count, self._areas))

    @staticmethod
    def _values(sums: list[float], count: int, areas: list[float]) -> list[float | None]:
        means = [_significant(s / count) if count else None for s in sums]
        smallest, largest = (min(areas), max(areas)) if areas else (None, None)
        return [means[0], smallest, largest, *means[1:]]


class ExcelMetrics:
    name: ClassVar[str] = "excel"
    group: ClassVar[Group] = "metrics"
    title: ClassVar[str] = 'Metrics (Excel: sheets "Polygon Metrics" and "Summary")'
    path: ClassVar[str] = "metrics/metrics.xlsx"

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        scale = options.pixel_to_micrometer_scale
        book = Workbook(write_only=True)  # rows go to temporary files, not memory
        try:
            cells, images = book.create_sheet("Polygon Metrics"), book.create_sheet("Summary")
            summary = Summary(scale)
            for sheet, headings in ((cells, [heading(c, scale) for c in COLUMNS]), (images, summary.headings)):
                sheet.freeze_panes = "A2"
                sheet.append(headings)
            for image, file_name, rows in _measured(project, options, ctx, workers):
                for row in rows:
                    cells.append(_excel_row(cells, row))
                images.append(_excel_row(images, summary.add(image, file_name, rows)))
                progress.done(f"Excel metrics: {image.name}", image.name)
            images.append(_excel_row(images, summary.overall()))
            with tempfile.TemporaryFile() as saved:
                book.save(saved)
                size = saved.tell()
                saved.seek(0)
                archive.write_stream(self.path, saved, size, compress=False)  # an xlsx is a ZIP already
        except BaseException:
            _discard(book)
            raise


class CsvMetrics:
    name: ClassVar[str] = "csv"
    group: ClassVar[Group] = "metrics"
    title: ClassVar[str] = "Metrics (CSV, UTF-8, one row per cell)"
    path: ClassVar[str] = "metrics/metrics.csv"

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        scale = options.pixel_to_micrometer_scale
        with archive.open_text(self.path) as out:
            table = csv.writer(out)
            table.writerow([heading(c, scale) for c in COLUMNS])
            for image, _, rows in _measured(project, options, ctx, workers):
                table.writerows([neutralised(v) for v in row] for row in rows)
                progress.done(f"CSV metrics: {image.name}", image.name)


class JsonMetrics:
    name: ClassVar[str] = "json"
    group: ClassVar[Group] = "metrics"
    title: ClassVar[str] = "Metrics (JSON: units, one object per cell, per-image summary)"
    path: ClassVar[str] = "metrics/metrics.json"

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        scale = options.pixel_to_micrometer_scale
        keys = [c.key for c in COLUMNS]
        head = {
            "pixelToMicrometerScale": scale,
            "units": {c.key: unit(c.kind, scale) for c in MEASURED if unit(c.kind, scale)},
            "columns": {c.key: heading(c, scale) for c in COLUMNS},
        }
        summary, images, count = Summary(scale), [], 0
        with archive.open_text(self.path) as out:
            out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "polygons": [')
            for image, file_name, rows in _measured(project, options, ctx, workers):
                for row in rows:
                    out.write(("\n    " if count == 0 else ",\n    ") + _json_object(keys, row))
                    count += 1
                images.append(summary.add(image, file_name, rows))
                progress.done(f"JSON metrics: {image.name}", image.name)
            tail = {"images": [dict(zip(summary.keys, row, strict=True)) for row in images]}
            tail["allImages"] = dict(zip(summary.keys[2:], summary.overall()[2:], strict=True))
            out.write(("\n  ],\n" if count else "],\n") + json.dumps(tail, ensure_ascii=False, indent=2)[2:])
            out.write("\n")


def neutralised(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert with a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _measured(
    project: ProjectSnapshot, options: ExportOptions, ctx: StepContext, workers: Workers
) -> Iterator[tuple[ImageData, str, list[Row]]]:
    names = image_file_names(project.images)
    named = ((image, names[image.id]) for image in project.images)
    for (image, file_name), (rows, warnings) in workers.map(image_rows, named, options.pixel_to_micrometer_scale):
        for message in warnings:
            ctx.warn(message)
        yield image, file_name, rows


def _excel_row(sheet: Any, row: Row) -> list[Any]:
    """Text as text cells: openpyxl would otherwise store `=…` as a formula."""
    cells: list[Any] = []
    for value in row:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells


def _discard(book: Workbook) -> None:
    """Delete the temporary file of every sheet (openpyxl removes them only on save or at exit)."""
    for sheet in book.worksheets:
        writer = getattr(sheet, "_writer", None)
        if writer is not None:  # the sheet has a temporary file
            sheet.close()
            writer.cleanup()


def _json_object(keys: list[str], row: Row) -> str:
    return json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False)


def _factor(kind: Kind, scale: float | None) -> float:
    if not scale:
        return 1.0
    return {"length": scale, "area": scale * scale}.get(kind, 1.0)


def _significant(value: float) -> float | None:
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
