"""The use cases. Routes and socket handlers call these and nothing below them.

Every method takes the acting user's id, raises domain errors (never HTTP
ones), and makes each state change in one unit of work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Row

from exportd.config import Settings
from exportd.domain import errors
from exportd.domain.jobs import ACTIVE, CancelReason, JobStatus
from exportd.domain.requests import Credentials, ExportRequest, PolygonIn
from exportd.engine.children import SharedPool
from exportd.engine.hooks import EngineHooks
from exportd.export.formats import ANNOTATION_WRITERS, FEATURES, METRICS_WRITERS, available_formats
from exportd.imports.batch import Existing, NewImage, Upload, prepare, stored_stem
from exportd.security import Passwords, Tokens
from exportd.segmentation import polygon_rows
from exportd.storage import LocalStorage, WriteProbe
from exportd.store.repository import Repository
from exportd.store.uow import Store
from exportd.thumbnails import UnreadableImage, make_thumbnail, thumbnail_key

log = logging.getLogger(__name__)

#: past this many images in one upload, its duplicate check reads every image of the project rather than
#: those its names and sizes can match (one LIKE per name in the statement)
MAX_FILTERED_UPLOADS = 64
MAX_SEQ = 2**63 - 1  #: the largest seq a store column holds; asking for events after more is asking after it


@dataclass(frozen=True, slots=True)
class Imported:
    """What one upload request stored and skipped, and what it noticed."""

    images: list[tuple[Row, int]]  #: each stored image and its number of polygons (holes included)
    skipped: list[dict[str, str]]  #: {file, imageId, reason}: already in the project
    warnings: list[str]
    cells: int  #: external polygons stored


@dataclass(frozen=True, slots=True)
class OpenExport:
    """A completed export's file, opened before its status was read as downloadable."""

    handle: BinaryIO
    size: int
    file_name: str


class Services:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings,
                 hooks: EngineHooks | None = None) -> None:
        self.store = store
        self.hooks = hooks or EngineHooks()  #: where tests hold a download between its steps
        self.storage = storage
        self.settings = settings
        self.write_probe = WriteProbe([storage.root, storage.exports])  #: can an export be written?
        self.passwords = Passwords(fast=settings.password_hash_fast)
        self.tokens = Tokens(settings.secret_key, access_seconds=settings.access_token_seconds,
                             download_seconds=settings.download_token_seconds)
        self.pool: SharedPool | None = None  #: the engine's process pool, where label images are traced

    # -- accounts --------------------------------------------------------------

    async def register(self, credentials: Credentials) -> Row:
        password_hash = await asyncio.to_thread(self.passwords.hash, credentials.password)

        def register(repo: Repository) -> Row:
            if repo.user_by_email(credentials.email) is not None:
                raise errors.EmailTaken()
            return repo.add_user(credentials.email, password_hash)

        return await self.store.apply(register)

    async def login(self, email: str, password: str) -> tuple[Row, str, datetime]:
        user = await self.store.query(lambda repo: repo.user_by_email(email.strip().lower()))
        valid = user is not None and await asyncio.to_thread(self.passwords.verify, user.password_hash, password)
        if not valid:
            raise errors.InvalidCredentials()
        token, expires = self.tokens.access_token(user.id)
        return user, token, expires

    async def authenticate(self, token: str) -> Row:
        user_id = self.tokens.user_from_access_token(token)
        return await self.store.query(lambda repo: _existing_user(repo, user_id))

    def token_user_id(self, token: str) -> str:
        """The user a valid access token speaks for; whether the account still exists is for the
        caller's own transaction to check (`_existing_user`), saving a trip to the store."""
        return self.tokens.user_from_access_token(token)

    # -- projects, images, shares ----------------------------------------------

    async def create_project(self, user_id: str, name: str) -> Row:
        return await self.store.apply(lambda repo: repo.add_project(user_id, name))

    async def projects(self, user_id: str) -> Sequence[Row]:
        return await self.store.query(lambda repo: repo.projects_for(user_id))

    async def project(self, user_id: str, project_id: str) -> tuple[Row, Sequence[Row], dict[str, int]]:
        def read(repo: Repository):
            project = _visible_project(repo, user_id, project_id)
            image_rows = repo.images_of(project_id)
            return project, image_rows, repo.polygon_counts([row.id for row in image_rows])

        return await self.store.query(read)

    async def delete_project(self, user_id: str, project_id: str) -> None:
        def delete(repo: Repository) -> None:
            _require_owner(_visible_project(repo, user_id, project_id), user_id)
            for job in repo.active_jobs(project_id=project_id):
                repo.cancel(job.id, reason=CancelReason.SYSTEM_CANCELLED, cancelled_by=user_id)
            repo.delete_project(project_id)

        await self.store.apply(delete)

    async def share(self, user_id: str, project_id: str, email: str) -> Row:
        def share(repo: Repository) -> Row:
            _require_owner(_visible_project(repo, user_id, project_id), user_id)
            other = repo.user_by_email(email)
            if other is None:
                raise errors.UserNotFound("No account has this email.")
            if other.id == user_id:
                raise errors.BadRequest("You cannot share a project with yourself.", field="email")
            repo.add_share(project_id, other.id)
            return other

        return await self.store.apply(share)

    async def unshare(self, user_id: str, project_id: str, other_id: str) -> None:
        """Revoke `other_id`'s access (the owner, or the user leaving); their running exports are cancelled."""
        def unshare(repo: Repository) -> None:
            project = _visible_project(repo, user_id, project_id)
            if user_id != other_id:
                _require_owner(project, user_id)
            if not repo.remove_share(project_id, other_id):
                raise errors.UserNotFound("This user has no share of the project.")
            for job in repo.active_jobs(project_id=project_id, user_id=other_id):
                repo.cancel(job.id, reason=CancelReason.SYSTEM_CANCELLED, cancelled_by=user_id)

        await self.store.apply(unshare)

    async def shares(self, user_id: str, project_id: str) -> Sequence[Row]:
        def read(repo: Repository) -> Sequence[Row]:
            _visible_project(repo, user_id, project_id)
            return repo.shares(project_id)

        return await self.store.query(read)

    async def add_images(self, user_id: str, project_id: str, uploads: Sequence[Upload],
                         segmentation: dict[str, list[PolygonIn]]) -> list[Row]:
        """Upload images with polygons as JSON; the stored rows (see `import_images`)."""
        imported = await self.import_images(user_id, project_id, uploads, segmentation=segmentation)
        return [row for row, _ in imported.images]

    async def import_images(self, user_id: str, project_id: str, images: Sequence[Upload], *,
                            segmentation: dict[str, list[PolygonIn]] | None = None, coco: Upload | None = None,
                            masks: Sequence[Upload] = (), class_name: str = "cell") -> Imported:
        """Store images, with their polygons from JSON, a COCO file or label images; all or nothing.

        An image the project already holds (same name, same bytes) is skipped. Any file that cannot
        be used makes the whole request a BadRequest listing every such file (``rejected``), and
        nothing is stored.
        """
        def existing(repo: Repository) -> Sequence[Row]:
            _require_owner(_visible_project(repo, user_id, project_id), user_id)
            if len(images) > MAX_FILTERED_UPLOADS:
                return repo.images_of(project_id)
            return repo.images_like(project_id, prefixes=[stored_stem(upload.name) for upload in images],
                                    sizes=[len(upload.data) for upload in images])

        known = [Existing(row.id, row.name, row.size, self.storage.path(row.storage_key).read_bytes)
                 for row in await self.store.query(existing)]
        pool = self.pool if self.pool is not None and self.pool.running else None  # else: in this thread
        try:
            prepared = await asyncio.to_thread(prepare, images, known, segmentation=segmentation, coco=coco,
                                               masks=masks, class_name=class_name, pool=pool,
                                               pool_workers=pool.workers if pool else 1)
        except BrokenProcessPool:  # a pool process died (killed, out of memory); the next request gets a new one
            log.warning("a process tracing label images stopped; the import of %d images was refused", len(images))
            raise errors.TracingUnavailable(retry_after=self.settings.retry_after_seconds) from None
        if prepared.rejected:
            raise prepared.refusal()
        stored: list[tuple[str, str, NewImage]] = []
        try:
            for new in prepared.new:
                image_id = str(uuid.uuid4())
                key = f"projects/{project_id}/{image_id}{Path(new.name).suffix.lower()}"
                await asyncio.to_thread(self.storage.save, key, new.upload.data)
                stored.append((image_id, key, new))

            def insert(repo: Repository) -> list[tuple[Row, int]]:
                _visible_project(repo, user_id, project_id)  # still there
                rows = []
                for image_id, key, new in stored:
                    row = repo.add_image(project_id, image_id=image_id, name=new.name, width=new.width,
                                         height=new.height, content_type=new.content_type,
                                         size=len(new.upload.data), storage_key=key)
                    repo.set_polygons(image_id, new.polygons)
                    rows.append((row, len(new.polygons)))
                return rows

            rows = await self.store.apply(insert) if stored else []
        except BaseException:
            for _, key, _ in stored:
                self.storage.path(key).unlink(missing_ok=True)
            raise
        return Imported(rows, prepared.skipped, prepared.warnings, sum(new.cells for new in prepared.new))

    async def thumbnail(self, user_id: str, project_id: str, image_id: str) -> Path:
        """The file of an image's thumbnail, made on first use; only for a project the user sees."""
        def read(repo: Repository) -> Row:
            _visible_project(repo, user_id, project_id)
            image = repo.image(project_id, image_id)
            if image is None:
                raise errors.ImageNotFound()
            return image

        image = await self.store.query(read)
        path = self.storage.path(thumbnail_key(project_id, image_id))
        if not path.is_file():
            try:
                data = await asyncio.to_thread(make_thumbnail, self.storage.path(image.storage_key))
            except UnreadableImage as error:
                raise errors.ImageNotFound("The image's file cannot be read.") from error
            await asyncio.to_thread(self.storage.save, thumbnail_key(project_id, image_id), data)
        return path

    async def set_segmentation(self, user_id: str, project_id: str, image_id: str,
                               polygons: Sequence[PolygonIn]) -> int:
        def image(repo: Repository) -> Row:
            _require_owner(_visible_project(repo, user_id, project_id), user_id)
            found = repo.image(project_id, image_id)
            if found is None:
                raise errors.ImageNotFound()
            return found

        size = await self.store.query(image)
        rows = await asyncio.to_thread(polygon_rows, polygons, size.width, size.height)

        def replace(repo: Repository) -> None:
            image(repo)  # still there, still the caller's
            repo.set_polygons(image_id, rows)

        await self.store.apply(replace)
        return len(rows)

    # -- exports ---------------------------------------------------------------

    async def start_export(self, user_id: str, project_id: str, request: ExportRequest,
                           idempotency_key: str | None = None) -> tuple[Row, bool]:
        """Queue an export. Returns the job and whether it is new (False: an idempotent replay).

        One transaction: the user's row locked (which also proves the account still exists, so the route
        needs no lookup of its own), the project and the user's active count read under that lock, the
        job and its `export:queued` row written. On PostgreSQL, without an idempotency key or a selection of
        images, that is two statements (`Store.queue_job`), or one where no per-user limit is set (nothing
        to count, so no lock); a start it does not admit is decided again here, where the refusal gets its
        reasons."""
        options = request.options
        _check_formats(options.annotation_formats, options.metrics_formats, options.include_visualizations)
        fingerprint = _fingerprint(project_id, request)
        limit = self.settings.max_active_exports_per_user or None  # 0: no per-user limit
        if self.write_probe.stale:  # a job that cannot write its ZIP is refused now, not failed later
            await asyncio.to_thread(self.write_probe.require_writable)

        if idempotency_key is None and options.selected_image_ids is None:  # the common case, in one trip
            exists, job = await self.store.queue_job(user_id, project_id, options=options.to_json(), limit=limit,
                                                     project_name=request.project_name)
            if not exists:
                raise errors.Unauthorized("The account no longer exists.")
            if job is not None:
                return job, True

        def admit(repo: Repository) -> tuple[Row, bool]:
            if not repo.lock_existing_user(user_id):  # held to the commit: admissions of one user queue here
                raise errors.Unauthorized("The account no longer exists.")
            project = repo.project_for_admission(user_id, project_id, limit=limit or 0)  # no limit: count none
            if project is None:
                raise errors.ProjectNotFound()
            if idempotency_key is not None:
                seen = repo.idempotent_job(user_id, idempotency_key)
                if seen is not None:
                    if seen.request_hash != fingerprint:
                        raise errors.IdempotencyKeyReused()
                    return repo.job(seen.job_id), False
            if options.selected_image_ids is not None:
                _check_selection(options.selected_image_ids, repo.image_ids_of(project_id))
            if limit is not None and project.active_exports >= limit:
                active = [{"id": job.id, "projectId": job.project_id, "projectName": job.project_name,
                           "status": job.status, "progress": job.progress}
                          for job in repo.active_jobs(user_id=user_id)]
                raise errors.TooManyActiveExports(retry_after=self.settings.retry_after_seconds, active=active)
            job = repo.create_job(project_id=project_id, user_id=user_id, options=options.to_json(),
                                  project_name=request.project_name or project.name)
            if idempotency_key is not None:
                repo.remember_idempotency_key(user_id, idempotency_key, fingerprint, job.id)
            return job, True

        return await self.store.apply(admit)

    async def job(self, user_id: str, project_id: str, job_id: str) -> Row:
        return await self.store.query(lambda repo: _visible_job(repo, user_id, project_id, job_id))

    async def events(self, user_id: str, project_id: str, job_id: str, after: int) -> tuple[Row, list[dict]]:
        def read(repo: Repository):
            job = _visible_job(repo, user_id, project_id, job_id)
            return job, repo.events_after(job_id, min(after, MAX_SEQ))

        return await self.store.query(read)

    async def sync(self, user_id: str, job_id: str, after: int) -> tuple[Row, list[dict]]:
        """Like `events`, for a socket that knows the job id only."""
        def read(repo: Repository):
            job = repo.job(job_id)
            if job is None or repo.job_for(user_id, job.project_id, job_id) is None:
                raise errors.JobNotFound()
            return job, repo.events_after(job_id, min(after, MAX_SEQ))

        return await self.store.query(read)

    async def cancel(self, user_id: str, project_id: str, job_id: str) -> Row:
        """Cancel a pending or processing export. Idempotent once cancelled; 409 once completed or failed."""
        def cancel(repo: Repository) -> Row:
            job = repo.cancel(job_id, reason=CancelReason.USER_CANCELLED, cancelled_by=user_id,
                              user_id=user_id, project_id=project_id)
            if job is not None:  # the job is the user's, so the account exists (a job's user is a foreign key)
                return job
            _existing_user(repo, user_id)
            return _visible_job(repo, user_id, project_id, job_id)

        job = await self.store.cancel_as_owner(job_id, user_id=user_id, project_id=project_id)  # PostgreSQL
        if job is None:
            job = await self.store.apply(cancel, inline=True)  # no thread hop when the writer is idle
        if job.status == JobStatus.CANCELLED:
            return job
        raise errors.ExportNotCancellable(f"The export already {job.status}; it can no longer be cancelled.",
                                          job=job)

    async def history(self, user_id: str, project_id: str, limit: int, offset: int = 0) -> Sequence[Row]:
        def read(repo: Repository) -> Sequence[Row]:
            _visible_project(repo, user_id, project_id)
            return repo.history(user_id, project_id, limit, offset)

        return await self.store.query(read)

    async def download_token(self, user_id: str, project_id: str, job_id: str) -> tuple[str, datetime]:
        job = await self.job(user_id, project_id, job_id)
        _require_downloadable(job)
        return self.tokens.download_token(user_id, job_id)

    async def open_download(self, user_id: str, project_id: str, job_id: str) -> OpenExport:
        """Open the ZIP of a completed export, and only then confirm that the store still presents
        that very file as a completed export: whatever changed between the first check and the
        open (a discard, an expiry, a status that is not completed) answers 410 or 409 and sends
        nothing. Once open, the file stays whole on disk even if it is deleted, and its size is
        the Content-Length, so a stream is either the whole ZIP or visibly cut short."""
        job = await self.job(user_id, project_id, job_id)
        _require_downloadable(job)
        await self.hooks.after_download_check(job_id)
        try:
            handle = self.storage.open(job.file_path)  # closed by the response
        except FileNotFoundError as error:
            raise errors.ExportGone("The export file is no longer available.") from error
        try:
            now = await self.job(user_id, project_id, job_id)
            _require_downloadable(now)
            if now.file_path != job.file_path:
                raise errors.ExportGone("The export file is no longer available.")
            size = os.fstat(handle.fileno()).st_size
        except BaseException:
            handle.close()
            raise
        return OpenExport(handle=handle, size=size, file_name=now.file_name)

    async def discard(self, user_id: str, project_id: str, job_id: str) -> None:
        def discard(repo: Repository) -> str | None:
            job = _visible_job(repo, user_id, project_id, job_id)
            if job.status in ACTIVE:
                raise errors.ExportStillActive(job=job)
            repo.mark_discarded(job_id)
            return job.file_path

        file_path = await self.store.apply(discard)
        if file_path:  # the folder of the attempt that published it; the janitor takes any other
            await asyncio.to_thread(self.storage.delete_export, file_path)

    @staticmethod
    def formats() -> dict:
        return available_formats()


# -- guards, run inside a transaction ---------------------------------------------


def _visible_project(repo: Repository, user_id: str, project_id: str) -> Row:
    project = repo.project_for(user_id, project_id)
    if project is None:
        raise errors.ProjectNotFound()
    return project


def _existing_user(repo: Repository, user_id: str) -> Row:
    user = repo.user(user_id)
    if user is None:
        raise errors.Unauthorized("The account no longer exists.")
    return user


def _visible_job(repo: Repository, user_id: str, project_id: str, job_id: str) -> Row:
    job = repo.job_for(user_id, project_id, job_id)
    if job is None:
        raise errors.JobNotFound()
    return job


def _require_owner(project: Row, user_id: str) -> None:
    if project.owner_id != user_id:
        raise errors.Forbidden("Only the project's owner may do this.")


def _require_downloadable(job: Row) -> None:
    if job.status == JobStatus.CANCELLED:
        raise errors.ExportGone("The export was cancelled and is no longer available.")
    if job.status != JobStatus.COMPLETED:
        raise errors.ExportNotReady(f"The export is {job.status}; there is nothing to download.", job=job)
    if job.file_path is None:
        raise errors.ExportGone("The export has expired or was discarded and is no longer available.")


def _check_selection(selected: Sequence[str], known: set[str]) -> None:
    if not selected:
        raise errors.InvalidOptions("selectedImageIds must name at least one image.",
                                    field="options.selectedImageIds")
    unknown = sorted(set(selected) - known)
    if unknown:
        raise errors.UnknownImages(f"Unknown image ids: {', '.join(unknown)}",
                                   field="options.selectedImageIds", unknown=unknown)


def _check_formats(annotations: Sequence[str], metrics: Sequence[str], visualizations: bool) -> None:
    missing = [f"annotationFormats: {name}" for name in annotations if name not in ANNOTATION_WRITERS]
    missing += [f"metricsFormats: {name}" for name in metrics if name not in METRICS_WRITERS]
    if visualizations and "visualizations" not in FEATURES:
        missing.append("includeVisualizations")
    if missing:
        raise errors.InvalidOptions(f"Not available in this version: {', '.join(missing)}", field="options")


def _fingerprint(project_id: str, request: ExportRequest) -> str:
    body = json.dumps({"project": project_id, **request.model_dump(mode="json", by_alias=True)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()
