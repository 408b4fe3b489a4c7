"""Label images traced in the server's process pool, the one its exports use: the same cells, and a
pool process that dies refuses the request in the contract's shape, stores nothing, and is replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from exportd.imports import batch
from exportd.testing import end_this_process
from tests.acceptance.support import assert_error
from tests.acceptance.test_http_import import (
    HEIGHT, _png, _tiff, grey_png, labels_with_every_case, new_project, painted, stored_polygons, upload,
)
from tests.conftest import Served, serve


@pytest.fixture
async def pooled(tmp_path) -> AsyncIterator[Served]:
    instance, server, task = await serve(tmp_path, export_processes=1)
    try:
        yield instance
    finally:
        server.should_exit = True
        await task


def request_files() -> list:
    files = [("files", (f"{stem}.png", grey_png(n), "image/png")) for n, stem in enumerate("abc")]
    files += [("masks", ("a_masks.png", _png(labels_with_every_case(np.uint16)), "application/octet-stream")),
              ("masks", ("b.tif", _tiff(labels_with_every_case(np.uint32)), "application/octet-stream")),
              ("masks", ("c.png", _png(labels_with_every_case(np.uint8)), "application/octet-stream"))]
    return files


def stored_files(served: Served, project_id: str) -> list:
    folder = served.runtime.settings.storage_dir / "projects" / project_id
    return sorted(folder.rglob("*")) if folder.exists() else []


async def test_label_masks_are_traced_in_the_servers_process_pool_into_the_same_cells(pooled, monkeypatch):
    pool = pooled.runtime.services.pool
    assert pool is pooled.runtime.engine.pool and pool.running
    sent: list[str] = []
    submit = pool.submit

    def recording(fn, /, *args, **kwargs):
        sent.append(fn.__name__)
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(pool, "submit", recording)
    _, token = await pooled.user("ada@example.com")
    async with pooled.client(token) as http:
        project_id = await new_project(http)
        response = await upload(http, project_id, request_files())

    assert response.status_code == 201, response.text
    assert response.json()["cells"] == 12
    assert sent == ["trace_label_file"] * 3
    expected = labels_with_every_case(np.uint32)
    for rows in (await stored_polygons(pooled, project_id)).values():
        cells = painted(rows)
        assert len(cells) == 4 and sum(row.kind == "internal" for row in rows) == 1
        for mask in cells.values():  # each traced cell covers exactly one label's pixels
            values = np.unique(expected[mask])
            assert len(values) == 1 and values[0] != 0 and mask.sum() == (expected == values[0]).sum()
        border = next(row for row in rows if row.kind == "external" and row.id == "label-3")
        assert painted([border])[border.id][HEIGHT - 1, 0]


async def test_a_pool_process_that_dies_refuses_the_import_stores_nothing_and_is_replaced(pooled, monkeypatch):
    _, token = await pooled.user("ada@example.com")
    async with pooled.client(token) as http:
        project_id = await new_project(http)
        monkeypatch.setattr(batch, "trace_label_file", end_this_process)
        refused = await upload(http, project_id, request_files())
        body = assert_error(refused, 503, "SERVICE_UNAVAILABLE")
        assert "nothing was stored" in body["error"]
        assert int(refused.headers["Retry-After"]) >= 1
        listed = (await http.get(f"/api/projects/{project_id}")).json()
        assert listed["images"] == []
        assert stored_files(pooled, project_id) == []

        monkeypatch.undo()
        again = await upload(http, project_id, request_files())

    assert again.status_code == 201, again.text
    assert again.json()["cells"] == 12
    assert pooled.runtime.engine.pool.replaced == 1
