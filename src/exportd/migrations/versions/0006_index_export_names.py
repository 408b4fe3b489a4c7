"""index the names of a user's exports, for the completion's choice of an unused one

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

A completion takes the first of its candidate names that no other export of the
same user has. Without this index that check read every export the user ever
completed (the index on user and status finds them all): its cost grew with the
user's history, and a long-lived account paid it on every export. Partial: only
rows with a name (completed exports) are indexed, so a claim's UPDATE adds nothing
to it.
"""

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_export_jobs_user_file_name", "export_jobs", ["user_id", "file_name"],
                    postgresql_where=text("file_name IS NOT NULL"), sqlite_where=text("file_name IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_export_jobs_user_file_name", table_name="export_jobs")
