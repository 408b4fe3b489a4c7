"""PostgreSQL: every stored event is announced with NOTIFY, delivered when its transaction commits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The trigger sends ``{"jobId", "seq", "type", "payload"}`` on the channel
``exportd_events`` (API nodes relay it to their sockets); an event too large for
NOTIFY's 8000 bytes goes without its payload, and a listener reads it from the
store. The events that take a job from its attempt (cancelled, failed, queued)
also go, without payload, on ``exportd_stops``, which the workers hear. SQLite has no NOTIFY: the
embedded shape is one process and hears its own commits.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION exportd_notify_event() RETURNS trigger AS $$
DECLARE
    message text;
BEGIN
    message := json_build_object('jobId', NEW.job_id, 'seq', NEW.seq, 'type', NEW.type,
                                 'payload', NEW.payload)::text;
    IF octet_length(message) > 7900 THEN
        message := json_build_object('jobId', NEW.job_id, 'seq', NEW.seq, 'type', NEW.type)::text;
    END IF;
    PERFORM pg_notify('exportd_events', message);
    IF NEW.type IN ('export:cancelled', 'export:failed', 'export:queued') THEN
        PERFORM pg_notify('exportd_stops',
                          json_build_object('jobId', NEW.job_id, 'seq', NEW.seq, 'type', NEW.type)::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute("CREATE TRIGGER export_events_notify AFTER INSERT ON export_events "
               "FOR EACH ROW EXECUTE FUNCTION exportd_notify_event()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS export_events_notify ON export_events")
    op.execute("DROP FUNCTION IF EXISTS exportd_notify_event()")
