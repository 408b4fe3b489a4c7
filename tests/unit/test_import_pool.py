"""Label images traced in a process pool: the same request as inline, a bounded share of the pool,
and a pool that comes back after one of its processes died."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import tifffile
from PIL import Image

from exportd.engine.children import SharedPool
from exportd.imports.batch import Prepared, Upload, prepare

WIDTH, HEIGHT = 96, 72


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def labels(seed: int, cells: int = 12, dtype=np.uint16, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Discs at random places (some touching, some at the border) and a cell with a hole."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    found = np.zeros((height, width), dtype=dtype)
    for label in range(1, cells + 1):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 10)
        found[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = label
    found[5:25, 60:85] = cells + 1
    found[11:17, 68:75] = 0
    return found


def image(seed: int) -> bytes:
    return _png(np.random.default_rng(seed).integers(0, 255, (HEIGHT, WIDTH), dtype=np.uint8))


def every_case() -> tuple[list[Upload], list[Upload]]:
    """Images, and label images of every kind a request may hold: good ones of each format and depth,
    an unreadable one, one of the wrong size, a second one for an image, one for no image."""
    images = [Upload(f"img_{n}.png", image(n)) for n in range(9)]
    masks = [
        Upload("img_0.png", _png(labels(0))),
        Upload("img_1_cp_masks.png", _png(labels(1, dtype=np.uint8))),
        Upload("img_2.tif", _tiff(labels(2, dtype=np.uint32) * 9)),
        Upload("img_3_masks.png", b"not a picture"),
        Upload("img_4.png", _png(labels(4, height=HEIGHT + 1))),
        Upload("img_5.png", _png(labels(5))),
        Upload("img_5_masks.png", _png(labels(55))),  # a second label image for img_5
        Upload("img_6.png", _png(np.zeros((HEIGHT, WIDTH), np.uint16))),  # no cells
        Upload("nobody.png", _png(labels(9))),
        Upload("img_7.png", _png(labels(7, cells=40))),
    ]
    return images, masks  # img_8 has no label image


def same_request(first: Prepared, second: Prepared) -> None:
    assert first.rejected == second.rejected
    assert first.warnings == second.warnings
    assert first.skipped == second.skipped
    assert [(new.name, new.width, new.height, new.kind) for new in first.new] == \
           [(new.name, new.width, new.height, new.kind) for new in second.new]
    for one, other in zip(first.new, second.new, strict=True):
        assert [{k: v for k, v in row.items() if k != "points"} for row in one.polygons] == \
               [{k: v for k, v in row.items() if k != "points"} for row in other.polygons]
        for row, twin in zip(one.polygons, other.polygons, strict=True):
            np.testing.assert_array_equal(row["points"], twin["points"])


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2) as executor:
        yield executor


def test_label_images_traced_in_a_process_pool_make_the_same_request_as_traced_inline(pool):
    images, masks = every_case()
    inline = prepare(images, [], masks=masks, class_name="nucleus")
    pooled = prepare(images, [], masks=masks, class_name="nucleus", pool=pool, pool_workers=2)

    same_request(inline, pooled)
    assert {r["file"] for r in pooled.rejected} == {"img_3_masks.png", "img_4.png", "img_5_masks.png"}
    assert sum(new.cells for new in pooled.new) > 60
    assert "nobody.png: no uploaded image has its stem; not used" in pooled.warnings
    assert "img_8.png: no label image; imported without cells" in pooled.warnings


class CountingExecutor(Executor):
    """Runs each call when its result is asked for, and counts the calls handed in and not yet collected."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        executor = self

        class Deferred(Future):
            def result(self, timeout=None):
                if not self.done():
                    executor.in_flight -= 1
                    self.set_result(fn(*args, **kwargs))
                return super().result(timeout)

        return Deferred()


def test_a_request_keeps_at_most_two_label_images_per_pool_process_in_flight():
    images = [Upload(f"img_{n}.png", image(n)) for n in range(20)]
    masks = [Upload(f"img_{n}.png", _png(labels(n))) for n in range(20)]
    counting = CountingExecutor()
    pooled = prepare(images, [], masks=masks, pool=counting, pool_workers=3)

    assert counting.calls == 20
    assert counting.most_in_flight == 6
    same_request(prepare(images, [], masks=masks), pooled)


def test_a_shared_pool_whose_process_died_fails_what_it_held_and_starts_again():
    pool = SharedPool(1)
    pool.start()
    try:
        assert pool.submit(os.getpid).result(timeout=60) != os.getpid()
        with pytest.raises(BrokenProcessPool):
            pool.submit(os._exit, 1).result(timeout=60)  # the process dies as an out-of-memory kill would end it
        assert pool.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        assert pool.replaced == 1
    finally:
        pool.shutdown()
    assert not pool.running
    with pytest.raises(RuntimeError):
        pool.submit(sum, [1])


def test_pool_processes_do_not_run_again_the_script_that_started_the_server(tmp_path):
    script = tmp_path / "server.py"  # run as a file, as the `exportd` command is: no module spec
    script.write_text(
        "import sys\n"
        "import xml.dom.minidom  # stands for the CLI: only the script imports it\n"
        "from exportd.engine.children import process_pool\n"
        "if __name__ == '__main__':\n"
        "    with process_pool(1) as pool:\n"
        "        print(pool.submit(eval, \"'xml.dom.minidom' in __import__('sys').modules\").result(60))\n")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "False"
