"""The schema, as SQLAlchemy Core tables. Migrations in ``exportd/migrations`` create it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    LargeBinary,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python; naive UTC in the column, so every engine compares alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


ID = String(36)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("owner_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

project_shares = Table(
    "project_shares",
    metadata,
    Column("project_id", ID, ForeignKey("projects.id"), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True, index=True),
    Column("created_at", UTCDateTime, nullable=False),
)

images = Table(
    "images",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("storage_key", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

polygons = Table(
    "polygons",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False),  #: the client's id, unique within its image
    Column("image_id", ID, ForeignKey("images.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("points", LargeBinary, nullable=False),  #: see store/points.py
    Column("parent_id", ID),
    Column("class_name", String(100), nullable=False),
    UniqueConstraint("image_id", "id", name="uq_polygons_image_id"),
)

#: the jobs each status query asks for, and only those (migration 0007): name, columns, predicate. No index but the
#: primary key can serve a guarded lookup of one job, and none grows with the history of finished jobs
#: but those of completed exports, which the estimate and the retention sweep read
STATUS_INDEXES = (
    ("ix_export_jobs_active_user", ("user_id",), "status IN ('pending', 'processing')"),
    ("ix_export_jobs_pending_created", ("created_at",), "status = 'pending'"),
    ("ix_export_jobs_processing_started", ("started_at",), "status = 'processing'"),
    ("ix_export_jobs_project_completed", ("project_id", "completed_at"), "status = 'completed'"),
    ("ix_export_jobs_completed_unexpired", ("completed_at",), "status = 'completed' AND expired_at IS NULL"),
)

#: the unique index of each user's export names (migration 0008): a completion that met it chooses again
NAMES_INDEX = "ix_export_jobs_user_file_name"

export_jobs = Table(
    "export_jobs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("lease_expires_at", UTCDateTime),
    Column("progress", Float, nullable=False, default=0),
    Column("stage", String(32)),
    Column("message", Text),
    Column("options", JSON, nullable=False),
    Column("project_name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),
    Column("reason", String(32)),
    Column("cancelled_by", ID),
    Column("previous_status", String(16)),
    Column("error", Text),
    Column("error_code", String(64)),
    Column("retryable", Boolean),
    Column("warnings", JSON),
    Column("processing_time", Float),
    Column("export_size", Integer),
    Column("file_name", String(255)),
    Column("file_path", String(1000)),
    Column("expired_at", UTCDateTime),
    Column("discarded_at", UTCDateTime),
    Index("ix_export_jobs_project_user_created", "project_id", "user_id", "created_at"),
    *(Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))
      for name, columns, where in STATUS_INDEXES),
    Index(NAMES_INDEX, "user_id", "file_name", unique=True,
          postgresql_where=text("file_name IS NOT NULL"),
          sqlite_where=text("file_name IS NOT NULL")),
)

export_events = Table(
    "export_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", ID, ForeignKey("export_jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "seq", name="uq_export_events_job_seq"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", ID, ForeignKey("export_jobs.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
