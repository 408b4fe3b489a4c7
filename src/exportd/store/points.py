"""Polygon points as stored: one blob of little-endian float64 (x, y) pairs per polygon.

A blob reads back as one numpy array instead of thousands of Python lists and
floats, which keeps large projects small in memory and cheap for the garbage
collector when an export loads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_DTYPE = np.dtype("<f8")


def pack(points: Sequence[Sequence[float]] | np.ndarray) -> bytes:
    return np.asarray(points, dtype=_DTYPE).reshape(-1, 2).tobytes()


def unpack(blob: bytes) -> np.ndarray:
    """A read-only (n, 2) float64 array over the blob (no copy)."""
    return np.frombuffer(blob, dtype=_DTYPE).reshape(-1, 2)
