"""Load what one export needs from the store, before the pipeline starts.

The rows are read where the store reads (a reader thread on SQLite). Turning
them into the snapshot's objects is Python work that holds the GIL whichever
thread does it: on a reader thread it would slow the SQLite writer behind it
(every statement gives the GIL up and waits to get it back), so it runs on
the event loop, in slices of `SLICE` polygons with a yield between them, and
a large project's thousands of polygons never hold up a cancel for longer
than one slice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Row

from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.storage import LocalStorage
from exportd.store import points
from exportd.store.uow import Store

SLICE = 500  #: polygons converted between two yields to the event loop (about 2-4 ms)


async def load_snapshot(store: Store, storage: LocalStorage, job: Row) -> ProjectSnapshot:
    selected = (job.options or {}).get("selectedImageIds")
    image_rows, polygon_rows = await store.project_rows(job.project_id, selected)
    shapes: dict[str, list[PolygonData]] = defaultdict(list)
    for start in range(0, len(polygon_rows), SLICE):
        if start:
            await asyncio.sleep(0)
        _convert(polygon_rows[start:start + SLICE], shapes)
    images = tuple(
        ImageData(id=row.id, name=row.name, width=row.width, height=row.height,
                  path=storage.path(row.storage_key), polygons=tuple(shapes[row.id]))
        for row in image_rows
    )
    return ProjectSnapshot(id=job.project_id, name=job.project_name, images=images)


def _convert(rows: Sequence[Row], shapes: dict[str, list[PolygonData]]) -> None:
    unpack = points.unpack
    for image_id, polygon_id, kind, blob, parent_id, class_name in rows:
        shapes[image_id].append(PolygonData(polygon_id, kind, unpack(blob), parent_id, class_name))
