"""PostgreSQL: a brand-new job's export:queued no longer goes on the workers' stops channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

``exportd_stops`` tells the workers that a job left its attempt: cancelled,
failed, or queued again (its lease ran out, or its worker gave it back). A job's
first ``export:queued`` (seq 1) takes it from no attempt, yet every worker
process heard it and decoded it, once for every export. Only a later one (seq
above 1, a requeue) goes there now. The events channel is unchanged.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _function(stops_condition: str) -> str:
    return f"""
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
    IF {stops_condition} THEN
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
    op.execute(_function("NEW.type IN ('export:cancelled', 'export:failed') "
                         "OR (NEW.type = 'export:queued' AND NEW.seq > 1)"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_function("NEW.type IN ('export:cancelled', 'export:failed', 'export:queued')"))
