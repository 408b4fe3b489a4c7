"""An upload's duplicate check and unique names read only the images its names and sizes can match,
and decide as if they had read the whole project."""

from __future__ import annotations

from exportd.imports.batch import Existing, Upload, prepare, stored_stem
from tests.acceptance.test_http_import import grey_png

STORED = ["a.png", "a_2.png", "A_3.png", "a.b.png", "100%.png", "x_1.png", "xy1.png", "Zellé.png", "ZELLÉ_2.png",
          "b.jpg", "c.png", "photo.tif"]


async def test_the_images_an_upload_can_match_decide_as_the_whole_project_does(world):
    data = {name: grey_png(n, width=40 + n) for n, name in enumerate(STORED)}
    await world.services.import_images(world.user_id, world.project_id,
                                       [Upload(name, data[name]) for name in STORED])
    uploads = [
        Upload("a.png", data["a.png"]),  # already there
        Upload("A.PNG", data["A_3.png"]),  # already there under another case and a number
        Upload("a.png.png", grey_png(90)),  # new, its stem "a.png"
        Upload("100%.png", grey_png(91)),  # new: 100%_2.png
        Upload("x.png", grey_png(92)),  # "x_1.png" is no duplicate of it; LIKE's "_" matches literally
        Upload("zellé.png", data["ZELLÉ_2.png"]),  # already there, whatever the case
        Upload("b.png", data["b.jpg"]),  # already there: a PNG named b.jpg was stored as b.png
        Upload("dir/c.jpeg", grey_png(93)),  # a PNG: c.png, taken, so c_2.png
        Upload("new.png", grey_png(94)),
    ]

    def everything(repo):
        return repo.images_of(world.project_id)

    def candidates(repo):
        return repo.images_like(world.project_id, prefixes=[stored_stem(u.name) for u in uploads],
                                sizes=[len(u.data) for u in uploads])

    def existing(rows):
        return [Existing(row.id, row.name, row.size, world.runtime.storage.path(row.storage_key).read_bytes)
                for row in rows]

    whole = prepare(uploads, existing(await world.runtime.store.query(everything)))
    rows = await world.runtime.store.query(candidates)
    some = prepare(uploads, existing(rows))

    assert len(rows) < len(await world.runtime.store.query(everything))
    assert some.skipped == whole.skipped
    assert [new.name for new in some.new] == [new.name for new in whole.new]
    assert [s["file"] for s in whole.skipped] == ["a.png", "A.PNG", "zellé.png", "b.png"]
    assert [new.name for new in whole.new] == ["a.png.png", "100%_2.png", "x.png", "c_2.png", "new.png"]
