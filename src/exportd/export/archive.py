"""The export ZIP: a thin writer over `zipfile`, and the names of things inside it."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, TextIO

from exportd.domain.filenames import MAX_LENGTH, clean_file_name, export_file_names
from exportd.export.source import ImageData

CHUNK_SIZE = 1024 * 1024
COMPRESS_LEVEL = 3  #: zlib level of text entries: 3x as fast as the default 6, about 9 % larger
#: the longest suffix a writer adds to an image's stem (`<stem>_viz.png`, `<stem>.geojson`), so that
#: every file named after an image stays within `MAX_LENGTH` characters
DERIVED_SUFFIX = len("_viz.png")


class ArchiveWriter:
    """Writes one ZIP file entry by entry; `abort()` removes a half-written one."""

    def __init__(self, path: Path, generated_at: datetime | None = None) -> None:
        self.path = path
        self.generated_at = generated_at or datetime.now().astimezone()  #: entry times, "created" fields
        self._stamp = self.generated_at.timetuple()[:6]
        self._names: dict[str, None] = {}
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        self._zip = zipfile.ZipFile(self._file, "w", allowZip64=True)

    @property
    def names(self) -> list[str]:
        """Entry names written so far, in order."""
        return list(self._names)

    def write_file(self, arcname: str, path: Path, compress: bool = False) -> None:
        """Copy a file from disk in chunks; stored by default (images are already compressed)."""
        size = path.stat().st_size
        with open(path, "rb") as source, self._open(arcname, compress, size) as target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)

    def write_stream(self, arcname: str, source: IO[bytes], size: int, compress: bool = True) -> None:
        """Copy an open binary file of `size` bytes (e.g. a temporary file) in chunks."""
        with self._open(arcname, compress, size) as target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)

    @contextmanager
    def open_text(self, arcname: str) -> Iterator[TextIO]:
        """A UTF-8 text entry written piece by piece; nothing else may be written until it closes."""
        with self._open(arcname, True, 0) as target, io.TextIOWrapper(target, "utf-8", newline="") as text:
            yield text

    def write_bytes(self, arcname: str, data: bytes, compress: bool = True) -> None:
        with self._open(arcname, compress, len(data)) as target:
            target.write(data)

    def write_text(self, arcname: str, text: str, compress: bool = True) -> None:
        self.write_bytes(arcname, text.encode("utf-8"), compress)

    def write_json(self, arcname: str, obj: Any) -> None:
        self.write_text(arcname, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def close(self) -> int:
        """Finish the ZIP and return its size in bytes."""
        self._zip.close()
        self._file.close()
        return self.path.stat().st_size

    def abort(self) -> None:
        """Close whatever is open and delete the partial file."""
        try:
            self._zip.close()
        except Exception:  # noqa: BLE001 - the file is deleted anyway
            pass
        self._file.close()
        self.path.unlink(missing_ok=True)

    def _open(self, arcname: str, compress: bool, size: int) -> IO[bytes]:
        name = _checked(arcname)
        if name in self._names:
            raise ValueError(f"duplicate ZIP entry: {name}")
        self._names[name] = None
        info = zipfile.ZipInfo(name, date_time=self._stamp)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info._compresslevel = COMPRESS_LEVEL  # noqa: SLF001 - public as `compress_level` from Python 3.13
        info.external_attr = 0o644 << 16
        info.file_size = size  # lets zipfile decide on ZIP64 before writing
        return self._zip.open(info, "w")


def export_file_name(project_name: str, started_at: datetime) -> str:
    """`Demo_spheroids_2026-11-30_1432.zip`: the project and the export's start, readable and safe
    on every filesystem (see `domain/filenames.py`; the store adds a short id when two would collide)."""
    return export_file_names(project_name, started_at, "")[0]


def image_file_names(images: Iterable[ImageData]) -> dict[str, str]:
    """A safe, unique file name inside the ZIP for every image, by image id.

    Every writer that names a file after an image uses this, so `images/<name>`,
    COCO's `file_name`, YOLO's `<stem>.txt` and `<stem>_viz.png` always agree.
    Names keep their Unicode and lose what Windows refuses (`clean_file_name`);
    a stem is short enough that every file named after it stays within
    `MAX_LENGTH` characters. Stems are unique too (ignoring case), so `a.png`
    and `a.jpg` never share a label file.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for number, image in enumerate(images, 1):
        base = clean_file_name(PurePosixPath(image.name.replace("\\", "/")).name, f"image_{number}.png")
        stem, suffix = file_stem(base), base[len(file_stem(base)):]
        stem = stem[:MAX_LENGTH - max(DERIVED_SUFFIX, len(suffix))].rstrip(" .") or f"image_{number}"
        name, counter = stem + suffix, 1
        while file_stem(name).lower() in taken:
            counter += 1
            tail = f"_{counter}"
            name = stem[:MAX_LENGTH - max(DERIVED_SUFFIX, len(suffix)) - len(tail)] + tail + suffix
        taken.add(file_stem(name).lower())
        names[image.id] = name
    return names


def file_stem(name: str) -> str:
    """`spheroid_01` for `spheroid_01.png`; a name without a suffix is its own stem."""
    return PurePosixPath(name).stem


def _checked(arcname: str) -> str:
    path = PurePosixPath(arcname)
    if not arcname or path.is_absolute() or ".." in path.parts or "\\" in arcname:
        raise ValueError(f"unsafe ZIP entry name: {arcname!r}")
    return str(path)
