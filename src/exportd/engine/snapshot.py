"""Load what one export needs from the store, before the pipeline starts."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Row

from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.storage import LocalStorage
from exportd.store import points
from exportd.store.uow import Store


async def load_snapshot(store: Store, storage: LocalStorage, job: Row) -> ProjectSnapshot:
    selected = (job.options or {}).get("selectedImageIds")

    def read(repo):
        image_rows = repo.images_of(job.project_id, selected)
        return image_rows, repo.polygons_of([row.id for row in image_rows]) if image_rows else []

    image_rows, polygon_rows = await store.query(read)
    shapes: dict[str, list[PolygonData]] = defaultdict(list)
    for row in polygon_rows:
        shapes[row.image_id].append(
            PolygonData(id=row.id, kind=row.kind, points=points.unpack(row.points),
                        parent_id=row.parent_id, class_name=row.class_name)
        )
    images = tuple(
        ImageData(id=row.id, name=row.name, width=row.width, height=row.height,
                  path=storage.path(row.storage_key), polygons=tuple(shapes[row.id]))
        for row in image_rows
    )
    return ProjectSnapshot(id=job.project_id, name=job.project_name, images=images)
