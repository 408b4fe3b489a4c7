"""index completed jobs by project, for the started event's estimate

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_export_jobs_project_status_completed", "export_jobs",
                    ["project_id", "status", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_export_jobs_project_status_completed", table_name="export_jobs")
