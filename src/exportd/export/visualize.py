"""Visualizations: `visualizations/<stem>_viz.png`, each image with its cells drawn on it.

Cells are filled and outlined in the external colour, holes in the internal
colour, with the configured stroke width. `transparency` is the opacity of the
fills, as in the system exportd replaces: 0 draws outlines only, 1 paints the
polygons solid. With `showNumbers`, each cell's number (the `Polygon` column of
the metrics) sits on a white disc inside the cell, `fontSize` pixels high.
The PNG has the size of the original image and is RGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import VisualizationOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import ItemProgress

FOLDER = "visualizations/"
PNG_COMPRESSION = 3  #: zlib level: most of level 6's size at a fraction of its time

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Style:
    """The visualization options as plain data, for worker processes."""

    external: RGB
    internal: RGB
    stroke_width: int
    fill_alpha: int  #: 0-255
    font_size: int
    show_numbers: bool

    @classmethod
    def of(cls, options: VisualizationOptions) -> Style:
        return cls(
            external=_rgb(options.polygon_colors.external),
            internal=_rgb(options.polygon_colors.internal),
            stroke_width=options.stroke_width,
            fill_alpha=round(255 * options.transparency),
            font_size=options.font_size,
            show_numbers=options.show_numbers,
        )


def write_visualizations(
    project: ProjectSnapshot,
    options: VisualizationOptions,
    archive: ArchiveWriter,
    ctx: StepContext,
    progress: ItemProgress,
    workers: Workers,
) -> None:
    """One PNG per image that has cells to draw; the others are left out with a warning."""
    names = image_file_names(project.images)
    for image, (png, warnings) in workers.map(render, project.images, Style.of(options)):
        for message in warnings:
            ctx.warn(message)
        if png is not None:
            archive.write_bytes(f"{FOLDER}{file_stem(names[image.id])}_viz.png", png, compress=False)
        progress.done(f"Visualization: {image.name}", image.name)


def render(image: ImageData, style: Style) -> tuple[bytes | None, list[str]]:
    """The PNG of one image with its cells drawn, or None, and its warnings (runs in a worker process)."""
    cells, warnings = cells_of(image)
    if not cells:
        return None, warnings
    try:
        with Image.open(image.path) as source:
            base = _as_rgb(source)
    except FileNotFoundError:
        return None, [*warnings, f"{image.name}: the original file is missing from storage; no visualization"]
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return None, [*warnings, f"{image.name}: the original file cannot be read ({error}); no visualization"]
    drawn = Image.alpha_composite(base.convert("RGBA"), _overlay(base.size, cells, style)).convert("RGB")
    buffer = io.BytesIO()
    drawn.save(buffer, "PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue(), warnings


def _overlay(size: tuple[int, int], cells: list[Cell], style: Style) -> Image.Image:
    """A transparent layer with the fills, then the outlines, then the numbers."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for colour, ring in _rings(cells, style):
        if len(ring) >= 3:
            draw.polygon(ring, fill=(*colour, style.fill_alpha))
    for colour, ring in _rings(cells, style):
        draw.line([*ring, ring[0]], fill=(*colour, 255), width=style.stroke_width, joint="curve")
    if style.show_numbers:
        font = _font(style.font_size)
        for cell in cells:
            _number(draw, cell, font, style.font_size)
    return layer


def _rings(cells: list[Cell], style: Style):
    """(colour, points) of every outline: each cell, then its holes, in cell order."""
    for cell in cells:
        yield style.external, [tuple(p) for p in cell.polygon.points.tolist()]
        for hole in cell.holes:
            yield style.internal, [tuple(p) for p in hole.points.tolist()]


def _number(draw: ImageDraw.ImageDraw, cell: Cell, font: ImageFont.ImageFont, size: int) -> None:
    """The cell's number on a white disc at a point inside the cell."""
    centre = cell.shape.centroid
    if not cell.shape.contains(centre):
        centre = cell.shape.representative_point()
    x, y = centre.x, centre.y
    text = str(cell.number)
    left, top, right, bottom = draw.textbbox((x, y), text, font=font, anchor="mm")
    radius = max(right - left, bottom - top, size) / 2 + max(2, size // 5)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255, 220),
                 outline=(0, 0, 0, 200), width=max(1, size // 12))
    draw.text((x, y), text, fill=(0, 0, 0, 255), font=font, anchor="mm")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def _as_rgb(source: Image.Image) -> Image.Image:
    """8-bit RGB; 16-bit and float images are scaled to their own maximum first."""
    if source.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(source, dtype=np.float64)
        peak = pixels.max() if pixels.size and pixels.max() > 0 else 1.0
        return Image.fromarray((np.clip(pixels / peak, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    return source.convert("RGB")


def _rgb(hex_colour: str) -> RGB:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)
