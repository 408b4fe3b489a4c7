"""Where uploaded images live: a folder on local disk (shared storage in the scaled-out shape).

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


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

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
