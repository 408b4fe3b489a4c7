"""index jobs by what each query asks of their status, so no hot statement's cost grows with the backlog or history

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Three indexes began with (or held) the status, and every job's row stayed in
each of them for ever:

* the admission's count of the user's active jobs (``user_id, status``) read
  every export the user ever made, the status being checked row by row;
* the queue position and the sweep of stale pending jobs (``status,
  created_at``) read every pending job, but so did a claim or a completion whose
  planner, on statistics taken while the queue was empty, believed the status
  rare and looked the job up through this index instead of its primary key:
  one claim read the whole backlog, and a burst of N exports cost N^2;
* the estimate in ``export:started`` (``project_id, status, completed_at``).

Each is replaced by a partial index holding only the rows its query asks for:
active jobs by user, pending jobs by creation, processing jobs by start (the
reaper and the time limit read them all: as many as exports run), completed
jobs by project and by completion (the estimate, and the retention sweep, which
skips those already expired). No index holds a column that a running export's
progress reports and lease renewals change (the lease's end, the progress), so
PostgreSQL makes those updates in place (HOT), adding no index entry. A job's row is in the
active and pending (or processing) ones only while it is queued (or running),
so they stay as small as the backlog, and no index but the primary key can
serve a lookup of one job by id with a status guard.
"""

from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: name, columns, predicate
PARTIAL = (
    ("ix_export_jobs_active_user", ["user_id"], "status IN ('pending', 'processing')"),
    ("ix_export_jobs_pending_created", ["created_at"], "status = 'pending'"),
    ("ix_export_jobs_processing_started", ["started_at"], "status = 'processing'"),
    ("ix_export_jobs_project_completed", ["project_id", "completed_at"], "status = 'completed'"),
    ("ix_export_jobs_completed_unexpired", ["completed_at"], "status = 'completed' AND expired_at IS NULL"),
)
#: name, columns
REPLACED = (
    ("ix_export_jobs_user_status", ["user_id", "status"]),
    ("ix_export_jobs_status_created", ["status", "created_at"]),
    ("ix_export_jobs_project_status_completed", ["project_id", "status", "completed_at"]),
)


def upgrade() -> None:
    for name, columns, where in PARTIAL:
        op.create_index(name, "export_jobs", columns, postgresql_where=text(where), sqlite_where=text(where))
    for name, _ in REPLACED:
        op.drop_index(name, table_name="export_jobs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE export_jobs")


def downgrade() -> None:
    for name, columns in REPLACED:
        op.create_index(name, "export_jobs", columns)
    for name, _, _ in PARTIAL:
        op.drop_index(name, table_name="export_jobs")
