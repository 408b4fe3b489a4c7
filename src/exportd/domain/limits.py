"""What one image's segmentation may hold, so that every export of it finishes in bounded time and memory.

The API refuses more (400, naming the polygon); an export that meets a polygon
stored before these limits skips it with a warning. The figures behind them
are in docs/decisions.md ("Bounded geometry").
"""

from __future__ import annotations

MAX_POINTS_PER_POLYGON = 10_000
MAX_POINTS_PER_IMAGE = 250_000
MAX_POLYGONS_PER_IMAGE = 10_000
MAX_CLASS_NAME = 100
COORDINATE_MARGIN = 0.5  #: points may lie this fraction of the image's width (height) beyond its left and right (top and bottom) edges


def coordinate_range(size: float) -> tuple[float, float]:
    """The lowest and highest coordinate accepted along an image side of `size` pixels."""
    return -COORDINATE_MARGIN * size, (1 + COORDINATE_MARGIN) * size


def printable(text: str) -> bool:
    """No control or other invisible formatting characters (spreadsheets and label files refuse them)."""
    return text.isprintable()
