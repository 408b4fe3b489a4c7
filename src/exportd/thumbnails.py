"""Small previews of uploaded images, for the browser's image picker.

A thumbnail is a JPEG at most `SIZE` pixels on its longer side, made once from the stored
image and kept beside it (``projects/<project>/thumbnails/<image>.jpg``). An image's content
never changes under its id, so neither does its thumbnail: its ETag is the image id and the
version of this recipe, and browsers may keep it.

Microscopy images are often 16-bit or floating point; those are stretched to 8 bits between
their own minimum and maximum, so a dim image does not come out black.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SIZE = 160  #: pixels, the longer side
VERSION = 1  #: bump when the recipe changes, so cached copies are fetched again
QUALITY = 80


def thumbnail_key(project_id: str, image_id: str) -> str:
    return f"projects/{project_id}/thumbnails/{image_id}.jpg"


def etag(image_id: str) -> str:
    return f'"{image_id}.{SIZE}.{VERSION}"'


class UnreadableImage(Exception):
    """The stored image cannot be read (missing, damaged, or not an image any more)."""


def make_thumbnail(source: Path) -> bytes:
    """The JPEG bytes of `source`'s thumbnail (blocking: run it off the event loop).

    Raises `UnreadableImage` when the file is missing or cannot be decoded."""
    try:
        with Image.open(source) as image:
            image.draft("RGB", (SIZE * 2, SIZE * 2))  # JPEG: decode at a fraction of the size
            frame = ImageOps.exif_transpose(image) or image
            frame = _eight_bit(frame)
            frame.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            frame.save(out, "JPEG", quality=QUALITY, optimize=True)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImage(str(error)) from error


def _eight_bit(image: Image.Image) -> Image.Image:
    """RGB for display: deep grey images stretched over their own range, alpha on white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return Image.fromarray(((values - low) * scale).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
