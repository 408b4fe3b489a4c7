"""Turn a client's polygons into stored rows: ids assigned, holes tied to their parents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from shapely import Point, Polygon

from exportd.domain.errors import BadRequest
from exportd.domain.requests import PolygonIn


def polygon_rows(shapes: Sequence[PolygonIn]) -> list[dict[str, Any]]:
    """Stored rows for `shapes`; a hole without `parentId` belongs to the external polygon around it."""
    rows = [
        {"id": shape.id or str(uuid.uuid4()), "kind": shape.type, "points": shape.points,
         "parent_id": shape.parent_id, "class_name": shape.class_name}
        for shape in shapes
    ]
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise BadRequest("Polygon ids must be unique within an image.", field="polygons")
    externals = {row["id"]: row for row in rows if row["kind"] == "external"}
    for row in rows:
        if row["kind"] == "external":
            if row["parent_id"] is not None:
                raise BadRequest(f"External polygon {row['id']} cannot have a parentId.", field="polygons")
        elif row["parent_id"] is None:
            row["parent_id"] = _enclosing(row["points"], externals)
        elif row["parent_id"] not in externals:
            raise BadRequest(f"Hole {row['id']} names an unknown parent {row['parent_id']}.", field="polygons")
    return rows


def _enclosing(points: list[list[float]], externals: dict[str, dict[str, Any]]) -> str | None:
    if not externals:
        return None
    xs, ys = zip(*points, strict=True)
    probe = Point(sum(xs) / len(xs), sum(ys) / len(ys))
    for polygon_id, row in externals.items():
        if len(row["points"]) >= 3 and Polygon(row["points"]).buffer(0).covers(probe):
            return polygon_id
    return None
