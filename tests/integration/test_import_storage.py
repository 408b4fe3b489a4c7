"""An import that fails while storing leaves neither files nor rows behind."""

from __future__ import annotations

import numpy as np
import pytest

from exportd.services import Upload
from exportd.store.repository import Repository
from tests.acceptance.test_http_import import _png, grey_png, labels_with_every_case


async def test_an_import_whose_insert_fails_removes_the_files_it_stored(world, monkeypatch):
    before = {path for path in world.runtime.settings.storage_dir.rglob("*") if path.is_file()}
    images_before = len((await world.services.project(world.user_id, world.project_id))[1])
    calls = 0
    original = Repository.set_polygons

    def failing(self, image_id, shapes):
        nonlocal calls
        calls += 1
        if calls == 2:  # the second image of the transaction: the first is already inserted in it
            raise RuntimeError("the database went away")
        return original(self, image_id, shapes)

    monkeypatch.setattr(Repository, "set_polygons", failing)
    uploads = [Upload("x.png", grey_png(1)), Upload("y.png", grey_png(2))]
    masks = [Upload("x.png", _png(labels_with_every_case(np.uint8)))]
    with pytest.raises(RuntimeError):
        await world.services.import_images(world.user_id, world.project_id, uploads, masks=masks)

    after = {path for path in world.runtime.settings.storage_dir.rglob("*") if path.is_file()}
    assert calls == 2
    assert after == before
    assert len((await world.services.project(world.user_id, world.project_id))[1]) == images_before
