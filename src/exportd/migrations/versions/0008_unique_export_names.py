"""a user's export names are unique by index, so a completion chooses one without locking the user's row

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Two exports of one user never share a file name. The completion used to lock
the user's row to choose its name, so a user's completions (and admissions,
which lock the same row) followed one another, each holding the lock through
its commit's flush. The index now holds the rule: a completion chooses the
first name it sees free and, if another completion took that name meanwhile,
waits for it, fails on the index, and chooses again (``store/direct.py``).
Existing names are already unique: they were chosen under the lock.
"""

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NAME = "ix_export_jobs_user_file_name"
WHERE = "file_name IS NOT NULL"


def upgrade() -> None:
    op.drop_index(NAME, table_name="export_jobs")
    op.create_index(NAME, "export_jobs", ["user_id", "file_name"], unique=True,
                    postgresql_where=text(WHERE), sqlite_where=text(WHERE))


def downgrade() -> None:
    op.drop_index(NAME, table_name="export_jobs")
    op.create_index(NAME, "export_jobs", ["user_id", "file_name"],
                    postgresql_where=text(WHERE), sqlite_where=text(WHERE))
