"""Import of images with instance label masks: exportd against a plain scikit-image loop, same run.

Run: ``.venv/bin/python bench/import_masks.py [--images 1000] [--cells 50] [--keep]``

Data: `--images` grey PNGs of 512 x 384 and, for each, a 16-bit PNG label mask of about `--cells`
cells (discs and ellipses of radius 6-22 px placed at random, so some touch, some overlap the
border, some are cut by a later cell), generated once into a temporary folder.

* **Baseline**: the same tracing done by a plain scikit-image loop in this process: read each
  mask (Pillow), `skimage.measure.regionprops`, and `find_contours` on each region's padded
  image, keeping the contours as (x, y) arrays. Nothing is stored. It runs before and after the
  exportd run; the better of the two rates is the baseline (the machine is shared).
* **exportd**: `exportd serve` in its own process on a fresh data folder (SQLite), and
  `ExportdClient.import_images(images, masks=...)` from this one, which is what `exportd import`
  runs: every image and mask is uploaded over HTTP, checked, decoded, traced, validated, and
  stored (image file, image row, polygon rows) before the next batch goes. The rate is images
  per second of wall time from the first request to the summary; the import's stored cell count
  is checked against the first import of every run.
* **Peak RSS**: the sum of `VmHWM` (from `/proc/<pid>/status`, read after the import) over the
  server process and every process it started (the export pool's forkserver and workers, which
  trace the label images, and multiprocessing's resource tracker); the target applies to that
  sum. Each process counts the pages it shares with the others (the forkserver's modules, shared
  libraries), so the sum is an upper bound of the memory used; the sum of `Pss` (from
  `/proc/<pid>/smaps_rollup`, shared pages split between their processes) at the same moment is
  printed beside it, and this process's `ru_maxrss` for scale.

Targets: exportd >= 0.8x the baseline's images/s with everything stored; peak RSS of the server and
the processes it started, summed, < 300 MB.
The script never asserts: a slow run prints ``MISSES target``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from skimage.measure import find_contours, regionprops

WIDTH, HEIGHT = 512, 384
PASSWORD = "correct horse battery"


def generate(folder: Path, count: int, cells: int) -> tuple[Path, Path]:
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    for n in range(1, count + 1):
        labels = np.zeros((HEIGHT, WIDTH), np.uint16)
        for label in range(1, cells + 1):
            cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
            ry, rx = rng.uniform(6, 22, 2)
            y0, y1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, HEIGHT)
            x0, x1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, WIDTH)
            window = ((yy[y0:y1, x0:x1] - cy) / ry) ** 2 + ((xx[y0:y1, x0:x1] - cx) / rx) ** 2 <= 1
            labels[y0:y1, x0:x1][window] = label
        pixels = (40 + (labels > 0) * 120 + rng.integers(0, 30, (HEIGHT, WIDTH))).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"img_{n:04d}.png")
        Image.fromarray(labels).save(masks / f"img_{n:04d}.png")
    return images, masks


def plain_loop(masks: Path) -> tuple[float, int]:
    """(seconds, contours) of the plain scikit-image tracing of every mask."""
    began = time.perf_counter()
    contours = 0
    for path in sorted(masks.iterdir()):
        labels = np.asarray(Image.open(path))
        for region in regionprops(labels):
            top, left = region.bbox[0], region.bbox[1]
            for contour in find_contours(np.pad(region.image, 1).astype(np.uint8), 0.5):
                _ = contour[:, ::-1] + (left - 0.5, top - 0.5)
                contours += 1
    return time.perf_counter() - began, contours


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_field(path: str, name: str) -> float:
    """A `kB` field of a /proc file, in MB; 0 for a process that is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sorted(tree)


def tree_memory_mb(root: int) -> tuple[float, float, list[float]]:
    """(sum of VmHWM, sum of Pss, each process's VmHWM) over `root` and its descendants."""
    pids = process_tree(root)
    peaks = [proc_field(f"/proc/{pid}/status", "VmHWM") for pid in pids]
    pss = sum(proc_field(f"/proc/{pid}/smaps_rollup", "Pss") for pid in pids)
    return sum(peaks), pss, peaks


async def exportd_import(images: Path, masks: Path, data: Path) -> tuple[float, int, int, tuple]:
    """(seconds, images stored, cells stored, `tree_memory_mb` of the server) of one import into a fresh server."""
    from exportd.client import ExportdClient

    port = free_port()
    env = {**os.environ, "EXPORTD_DATA_DIR": str(data), "EXPORTD_PASSWORD_HASH_FAST": "true"}
    exportd = Path(sys.executable).with_name("exportd")
    server = subprocess.Popen([str(exportd), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for _ in range(600):
                try:
                    if (await http.get("/api/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            (await http.post("/api/auth/register", json={"email": "bench@example.com", "password": PASSWORD})
             ).raise_for_status()
        async with ExportdClient(url) as client:
            await client.login("bench@example.com", PASSWORD)
            project = await client.create_project("bench")
            began = time.perf_counter()
            summary = await client.import_images(project.id, [images], masks=masks)
            seconds = time.perf_counter() - began
            if summary.rejected:
                raise RuntimeError(f"rejected: {summary.rejected[:3]}")
            return seconds, len(summary.imported), summary.cells, tree_memory_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the generated data and the data folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="exportd-bench-import-"))
    try:
        began = time.perf_counter()
        images, masks = generate(folder, args.images, args.cells)
        print(f"generated {args.images} images {WIDTH}x{HEIGHT} with ~{args.cells}-cell 16-bit label masks "
              f"in {time.perf_counter() - began:.1f} s ({folder})")
        before, contours = plain_loop(masks)
        seconds, stored, cells, (server_rss, server_pss, peaks) = asyncio.run(exportd_import(images, masks, folder / "data"))
        after, _ = plain_loop(masks)
        baseline = args.images / min(before, after)
        rate = stored / seconds
        client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  plain scikit-image loop (read, regionprops, find_contours): {args.images / before:7.1f} images/s "
              f"before, {args.images / after:7.1f} after; {contours} contours")
        print(f"  exportd import (upload, trace, store everything):            {rate:7.1f} images/s "
              f"({stored} images, {cells} cells stored in {seconds:.1f} s)")
        ratio = rate / baseline
        print(f"  ratio {ratio:.2f}x the better baseline rate (target >= 0.80x): "
              f"{'meets target' if ratio >= 0.8 else 'MISSES target'}")
        print(f"  server peak RSS, its {len(peaks)} processes summed {server_rss:.0f} MB (target < 300 MB): "
              f"{'meets target' if server_rss < 300 else 'MISSES target'}")
        print(f"    each process's VmHWM {', '.join(f'{peak:.0f}' for peak in peaks)} MB (server first); "
              f"Pss summed after the import {server_pss:.0f} MB; this process {client_rss:.0f} MB")
        print(f"  machine: {os.cpu_count()} CPUs, shared with other work while measured")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
