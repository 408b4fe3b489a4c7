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
MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_BYTES = 100 * 1_048_576  #: an image's pixels once decoded (Pillow keeps RGB in 4 bytes a pixel)
COORDINATE_MARGIN = 0.5  #: points may lie this fraction of the image's width (height) beyond its left and right (top and bottom) edges


def coordinate_range(size: float) -> tuple[float, float]:
    """The lowest and highest coordinate accepted along an image side of `size` pixels."""
    return -COORDINATE_MARGIN * size, (1 + COORDINATE_MARGIN) * size


def printable(text: str) -> bool:
    """No control or other invisible formatting characters (spreadsheets and label files refuse them)."""
    return text.isprintable()


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """What Pillow needs to hold an image of `mode` and `size` decoded: 1 byte a pixel for 1-bit,
    greyscale and palette images, 2 for 16-bit, 4 for everything else (RGB included)."""
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return per_pixel * size[0] * size[1]
