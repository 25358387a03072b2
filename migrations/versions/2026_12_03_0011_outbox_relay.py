"""The outbox relay: outbound events beside customer notifications, parking and backoff.

Every notification row (channel `notify`) gets its outbound event row (channel `event`, key
`event:<key>`, kind the event type) from a trigger, so the event is written in the very
transaction that writes the notification, whichever statement does it (an earn's one statement,
the nightly tier batch, a checkout's capture ...). A voucher's event leaves its code out: the
code is the customer's alone. The relay (streams.relay) delivers the rows in order per wallet
and channel; `next_attempt_at` is its backoff, `parked_at` marks a row a receiver refused for
good (an operator's to look at, GET /outbox).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
ALTER TABLE notification_outbox
    ADD COLUMN channel text NOT NULL DEFAULT 'notify',
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN parked_at timestamptz,
    ADD CONSTRAINT ck_notification_outbox_channel_known CHECK (channel IN ('notify', 'event'))""")
    # The relay's two questions: the oldest pending rows, and whether a wallet has an older one.
    op.execute(
        "CREATE INDEX ix_notification_outbox_pending ON notification_outbox "
        "(channel, user_id, notification_id) WHERE delivered_at IS NULL AND parked_at IS NULL"
    )
    op.execute("""
CREATE FUNCTION notification_outbox_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_type text := CASE NEW.kind
        WHEN 'points_earned' THEN 'points.earned'
        WHEN 'points_redeemed' THEN 'points.redeemed'
        WHEN 'hold_released' THEN 'points.released'
        WHEN 'points_returned' THEN 'points.returned'
        WHEN 'points_clawed_back' THEN 'points.clawed_back'
        WHEN 'tier_changed' THEN 'tier.changed'
        WHEN 'voucher_delivered' THEN 'voucher.issued'
        WHEN 'points_expiring' THEN 'points.expiring'
    END;
BEGIN
    IF event_type IS NOT NULL THEN
        INSERT INTO notification_outbox (idempotency_key, kind, user_id, payload, channel,
                                         created_at)
        VALUES ('event:' || NEW.idempotency_key, event_type, NEW.user_id,
                NEW.payload - 'code', 'event', NEW.created_at)
        ON CONFLICT (idempotency_key) DO NOTHING;
    END IF;
    RETURN NULL;
END $$""")
    op.execute("REVOKE ALL ON FUNCTION notification_outbox_event() FROM PUBLIC")
    op.execute("""
CREATE TRIGGER notification_outbox_event AFTER INSERT ON notification_outbox
FOR EACH ROW WHEN (NEW.channel = 'notify') EXECUTE FUNCTION notification_outbox_event()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER notification_outbox_event ON notification_outbox")
    op.execute("DROP FUNCTION notification_outbox_event()")
    op.execute("DELETE FROM notification_outbox WHERE channel = 'event'")
    op.execute("DROP INDEX ix_notification_outbox_pending")
    op.execute("""
ALTER TABLE notification_outbox DROP CONSTRAINT ck_notification_outbox_channel_known,
    DROP COLUMN parked_at, DROP COLUMN next_attempt_at, DROP COLUMN channel""")
