"""Redemption: Stripe webhook events, recorded by event id so a redelivered event acts once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE stripe_events (
    event_id text PRIMARY KEY,
    type text NOT NULL,
    payment_intent_id text,
    workflow_id text,
    outcome text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_stripe_events_outcome_known
        CHECK (outcome IN ('signalled', 'saga_ended', 'unknown_payment_intent', 'ignored'))
)""")
    op.execute(
        "CREATE INDEX ix_stripe_events_payment_intent_id ON stripe_events (payment_intent_id)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE stripe_events")
