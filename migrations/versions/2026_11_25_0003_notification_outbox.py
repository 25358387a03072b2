"""Notification outbox: one row per notification event, delivered at most once by key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE notification_outbox (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL,
    kind text NOT NULL,
    user_id text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    CONSTRAINT uq_notification_outbox_idempotency_key UNIQUE (idempotency_key)
)""")
    op.execute("CREATE INDEX ix_notification_outbox_user ON notification_outbox (user_id)")


def downgrade() -> None:
    op.execute("DROP TABLE notification_outbox")
