"""Migrations carry existing data forward: polygons stored as JSON lists become float64 blobs."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from exportd.store import points
from exportd.store.migrate import upgrade
from exportd.testing import test_settings


async def test_upgrading_from_json_points_keeps_every_coordinate(tmp_path, backend):
    url = test_settings(tmp_path / "data").resolved().database_url
    await upgrade(url, "0002")
    shape = [[1.5, 2.25], [10.0, 2.0], [5.125, 8.0]]

    async def seed_and_read(revision_after: str):
        from sqlalchemy.ext.asyncio import create_async_engine

        async_engine = create_async_engine(url)
        async with async_engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ('u', 'u@x.io', 'h', '2026-01-01')"))
            await conn.execute(sa.text(
                "INSERT INTO projects (id, owner_id, name, created_at) VALUES ('p', 'u', 'P', '2026-01-01')"))
            await conn.execute(sa.text(
                "INSERT INTO images (id, project_id, position, name, width, height, content_type, size, storage_key,"
                " created_at) VALUES ('i', 'p', 1, 'a.png', 10, 10, 'image/png', 1, 'k', '2026-01-01')"))
            polygons = sa.table("polygons", sa.column("id"), sa.column("image_id"), sa.column("position"),
                                sa.column("kind"), sa.column("points", sa.JSON), sa.column("class_name"))
            await conn.execute(polygons.insert().values(id="c1", image_id="i", position=0, kind="external",
                                                        points=shape, class_name="cell"))
        await async_engine.dispose()
        await upgrade(url, revision_after)
        async_engine = create_async_engine(url)
        async with async_engine.connect() as conn:
            blob = (await conn.execute(sa.text("SELECT points FROM polygons WHERE id = 'c1'"))).scalar_one()
        await async_engine.dispose()
        return blob

    blob = await seed_and_read("head")
    assert np.array_equal(points.unpack(bytes(blob)), np.array(shape))
