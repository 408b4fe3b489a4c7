"""Turn a client's polygons into stored rows: checked against the image, ids assigned, holes tied to their parents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely import Point, Polygon, STRtree

from exportd.domain.errors import BadRequest
from exportd.domain.limits import COORDINATE_MARGIN, coordinate_range
from exportd.domain.requests import PolygonIn


def polygon_rows(shapes: Sequence[PolygonIn], width: int, height: int) -> list[dict[str, Any]]:
    """Stored rows for `shapes` on a `width` × `height` image; a hole without `parentId` belongs to the
    external polygon around it. BadRequest names the first polygon that does not fit."""
    (low_x, high_x), (low_y, high_y) = coordinate_range(width), coordinate_range(height)
    for number, shape in enumerate(shapes):
        points = np.asarray(shape.points, dtype=float)
        if (points[:, 0].min() < low_x or points[:, 0].max() > high_x
                or points[:, 1].min() < low_y or points[:, 1].max() > high_y):
            raise BadRequest(
                f"polygons.{number}: points must lie within the {width}x{height} image, give or take "
                f"{COORDINATE_MARGIN:.0%} of its size (x from {low_x:g} to {high_x:g}, y from {low_y:g} to {high_y:g}).",
                field="polygons")
    rows = [
        {"id": shape.id or str(uuid.uuid4()), "kind": shape.type, "points": shape.points,
         "parent_id": shape.parent_id, "class_name": shape.class_name}
        for shape in shapes
    ]
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise BadRequest("Polygon ids must be unique within an image.", field="polygons")
    externals = {row["id"]: row for row in rows if row["kind"] == "external"}
    orphans = []
    for row in rows:
        if row["kind"] == "external":
            if row["parent_id"] is not None:
                raise BadRequest(f"External polygon {row['id']} cannot have a parentId.", field="polygons")
        elif row["parent_id"] is None:
            orphans.append(row)
        elif row["parent_id"] not in externals:
            raise BadRequest(f"Hole {row['id']} names an unknown parent {row['parent_id']}.", field="polygons")
    if orphans:
        _tie_to_enclosing(orphans, list(externals.values()))
    return rows


def _tie_to_enclosing(holes: list[dict[str, Any]], externals: list[dict[str, Any]]) -> None:
    """Each hole's parent: the first external polygon (with a valid outline) covering the mean of its points."""
    outlines = [Polygon(row["points"]) for row in externals]
    usable = [n for n, outline in enumerate(outlines) if shapely.is_valid(outline)]
    tree = STRtree([outlines[n] for n in usable])
    for hole in holes:
        probe = Point(np.asarray(hole["points"], dtype=float).mean(axis=0))
        hits = tree.query(probe, predicate="covered_by")
        hole["parent_id"] = externals[usable[int(hits.min())]]["id"] if len(hits) else None
