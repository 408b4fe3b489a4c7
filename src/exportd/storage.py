"""Where uploaded images and finished exports live: behind a small interface, a folder here.

The store keeps keys relative to the storage (``projects/<p>/<image>.png``,
``exports/<job>.<attempt>/<name>.zip``), so every node that mounts the same
folder (``EXPORTD_STORAGE_DIR``) serves the same files, and another backend (an
object store) can replace ``LocalStorage`` without touching the engine. The
engine only knows an attempt's *scratch* folder, a local folder it writes the
export in; ``publish`` turns the finished file into a key (here the scratch
folder is already in the storage, so nothing is copied). Export paths stored
before keys existed are absolute; they are read as they are.

Every file exportd writes on a request's behalf goes through ``write_file``, and
a write that fails because the disk is full or read-only becomes
``StorageUnavailable`` (503, nothing kept). ``WriteProbe`` asks the same of the
folders before work is accepted and for ``/api/readyz``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from exportd.domain.errors import StorageUnavailable
from exportd.faults import storage_fault

PROBE_BYTES = 4096


def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write `data` to the new file `path` (the one place bytes meet the disk; tests replace it)."""
    with open(path, "xb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())


EXPORTS = "exports"  #: the folder of export attempts inside the storage


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.exports = root / EXPORTS

    def path(self, key: str) -> Path:
        """The local file of `key` (an absolute path, stored by an older version, is its own file)."""
        return Path(key) if os.path.isabs(key) else self.root / key

    def open(self, key: str) -> BinaryIO:
        """The stored file for reading; FileNotFoundError when it is gone."""
        return open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it

    # -- exports -----------------------------------------------------------------

    def scratch(self, job_id: str, attempt: int) -> Path:
        """The local folder one attempt writes its export in (one level below `exports`: one mkdir)."""
        return self.exports / f"{job_id}.{attempt}"

    def publish(self, file: Path) -> str:
        """The key under which a finished export, written in its scratch folder, is read from now on."""
        return file.relative_to(self.root).as_posix()

    def delete_export(self, key: str) -> None:
        """Delete a published export with its attempt's folder."""
        shutil.rmtree(self.path(key).parent, ignore_errors=True)

    def attempt_folders(self) -> list[str]:
        """The names (``<job>.<attempt>``) of every attempt's folder there is."""
        return [entry.name for entry in self.exports.iterdir() if entry.is_dir()] if self.exports.is_dir() else []

    def delete_attempt_folder(self, name: str) -> None:
        shutil.rmtree(self.exports / name, ignore_errors=True)

    def save(self, key: str, data: bytes) -> Path:
        """Write `data` under `key` atomically: a reader never sees half a file, a failure leaves none."""
        target = self.path(key)
        temporary = target.with_name(f".upload-{os.urandom(8).hex()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_file(temporary, data)
            os.replace(temporary, target)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if storage_fault(error):
                raise StorageUnavailable() from error
            raise
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return target

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)


class WriteProbe:
    """Whether files can still be written in `folders`: a small synced file is written and removed in each.

    `require_writable` trusts a success for `fresh_seconds`, so a burst of requests probes once.
    """

    def __init__(self, folders: Sequence[Path], *, fresh_seconds: float = 1.0) -> None:
        self.folders = list(folders)
        self.fresh_seconds = fresh_seconds
        self._passed_at = -float("inf")

    def check(self) -> None:
        """Probe every folder now; raises StorageUnavailable naming none of them (the log has the path)."""
        for folder in self.folders:
            probe = folder / f".probe-{os.urandom(8).hex()}"
            try:
                write_file(probe, b"\0" * PROBE_BYTES, sync=True)
            except OSError as error:
                if storage_fault(error):
                    raise StorageUnavailable() from error
                raise
            finally:
                with contextlib.suppress(OSError):
                    probe.unlink(missing_ok=True)
        self._passed_at = time.monotonic()

    @property
    def stale(self) -> bool:
        """No probe passed in the last `fresh_seconds`."""
        return time.monotonic() - self._passed_at > self.fresh_seconds

    def require_writable(self) -> None:
        if self.stale:
            self.check()
