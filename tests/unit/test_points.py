"""Polygon points: stored as blobs, read back without copies, never writable."""

from __future__ import annotations

import numpy as np
import pytest

from exportd.export.source import PolygonData, as_points
from exportd.store import points


def test_a_stored_blob_round_trips_and_is_used_without_a_copy():
    stored = points.unpack(points.pack([[1.5, 2.0], [3.0, 4.25], [5.0, 6.0]]))
    polygon = PolygonData("c1", "external", stored)

    assert polygon.points is stored
    assert polygon.points.tolist() == [[1.5, 2.0], [3.0, 4.25], [5.0, 6.0]]
    with pytest.raises(ValueError):
        polygon.points[0, 0] = 9.0


def test_a_read_only_view_of_writable_memory_is_copied():
    source = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    view = source.view()
    view.flags.writeable = False
    kept = as_points(view)
    source[0, 0] = 99.0  # the caller still owns (and may change) the memory behind the view

    assert kept is not view and kept[0, 0] == 1.0 and not kept.flags.writeable


@pytest.mark.parametrize("read_only_base", [False, True])
def test_a_blob_over_a_bytearray_is_copied(read_only_base):
    blob = bytearray(points.pack([[1.0, 2.0]]))
    flat = np.frombuffer(blob, dtype="<f8")
    flat.flags.writeable = not read_only_base
    view = flat.reshape(-1, 2)
    view.flags.writeable = False
    kept = as_points(view)
    blob[:8] = points.pack([[7.0, 0.0]])[:8]  # the bytearray's owner writes through every view

    assert kept is not view and kept[0, 0] == 1.0


@pytest.mark.parametrize("given", [[], [[1, 2], [3, 4]], np.zeros((0, 2)), ((1.0, 2.0),)])
def test_any_sequence_of_pairs_becomes_a_read_only_float_array(given):
    array = as_points(given)
    assert array.dtype == np.float64 and array.ndim == 2 and array.shape[1] == 2 and not array.flags.writeable


def test_anything_but_pairs_is_refused():
    with pytest.raises(ValueError, match="pairs"):
        as_points([[1.0, 2.0, 3.0]])
