"""PostgreSQL: progress events are no longer announced inside their transaction, but right after its commit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

A transaction that NOTIFYs holds PostgreSQL's notification-queue lock from its
pre-commit until its end, through the flush of its commit record, so such
commits cannot share a WAL flush and follow one another at one flush each
(600-800 a second on this kind of disk). Progress events are most of the
traffic. The trigger now skips them (a ``WHEN`` clause, so the function is not
even called), and a transaction that wrote progress events sends their NOTIFYs
with its COMMIT, as statements PostgreSQL runs right after the commit in a
transaction of their own that writes nothing and so waits for no flush
(``exportd/store/announcing.py``). Such a notification can be lost (the server
process dies between the two); the job's next event, which a listener hears,
makes it fill the gap from the store. Every other event (queued, started and
the terminal ones, and the stops) is still announced in its own transaction:
those must never be lost. SQLite has no NOTIFY and is untouched.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PROGRESS = "export:progress"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS export_events_notify ON export_events")
    op.execute("CREATE TRIGGER export_events_notify AFTER INSERT ON export_events "
               f"FOR EACH ROW WHEN (NEW.type <> '{PROGRESS}') EXECUTE FUNCTION exportd_notify_event()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS export_events_notify ON export_events")
    op.execute("CREATE TRIGGER export_events_notify AFTER INSERT ON export_events "
               "FOR EACH ROW EXECUTE FUNCTION exportd_notify_event()")
