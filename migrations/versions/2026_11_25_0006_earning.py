"""Earning: campaigns, booking events (dedupe by event id), per-booking accruals (pending points),
refunds processed per booking, and the points debt left by clawbacks larger than the balance.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE campaigns (
    campaign_id text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    multiplier_pct integer NOT NULL DEFAULT 100,
    bonus_points bigint NOT NULL DEFAULT 0,
    product_types text[] NOT NULL DEFAULT '{}',
    categories text[] NOT NULL DEFAULT '{}',
    cap_points_per_booking bigint,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    ended_at timestamptz,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_campaigns_kind_known CHECK (kind IN ('multiplier', 'bonus')),
    CONSTRAINT ck_campaigns_window CHECK (ends_at > starts_at),
    CONSTRAINT ck_campaigns_multiplier CHECK (kind <> 'multiplier' OR multiplier_pct > 100),
    CONSTRAINT ck_campaigns_bonus CHECK (kind <> 'bonus' OR bonus_points > 0),
    CONSTRAINT ck_campaigns_cap
        CHECK (cap_points_per_booking IS NULL OR cap_points_per_booking >= 0)
);

CREATE INDEX ix_campaigns_window ON campaigns (starts_at, ends_at);

-- Booking events from the booking platform, claimed by event id so a redelivery acts once.
CREATE TABLE booking_events (
    event_id text PRIMARY KEY,
    type text NOT NULL,
    booking_id text NOT NULL,
    user_id text NOT NULL,
    request_hash text NOT NULL,
    workflow_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ix_booking_events_booking ON booking_events (booking_id);

-- What a booking earns: planned when paid, posted at once or when its pending period ends.
-- `pending_points` is what activation will post (reduced by partial refunds while pending).
CREATE TABLE booking_accruals (
    booking_id text PRIMARY KEY,
    user_id text NOT NULL,
    payment_id text,
    amount_paid bigint NOT NULL,
    currency text NOT NULL,
    points bigint NOT NULL,
    pending_points bigint NOT NULL DEFAULT 0,
    status text NOT NULL,
    pending_until timestamptz,
    idempotency_key text NOT NULL,
    earn_tx_id bigint,
    breakdown jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_booking_accruals_status_known
        CHECK (status IN ('pending', 'posted', 'voided')),
    CONSTRAINT ck_booking_accruals_points CHECK (points >= 0 AND pending_points >= 0),
    CONSTRAINT fk_booking_accruals_earn_tx_id_wallet_transactions
        FOREIGN KEY (earn_tx_id) REFERENCES wallet_transactions (tx_id)
);

CREATE INDEX ix_booking_accruals_user_pending ON booking_accruals (user_id)
    WHERE status = 'pending';

-- One row per refund of a booking; each compensation step records its result once.
CREATE TABLE booking_refunds (
    booking_id text NOT NULL,
    refund_id text NOT NULL,
    user_id text NOT NULL,
    amount bigint NOT NULL,
    currency text NOT NULL,
    full_refund boolean NOT NULL DEFAULT false,
    points_returned bigint,
    points_clawed_back bigint,
    pending_reduced bigint,
    debt_recorded bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_booking_refunds PRIMARY KEY (booking_id, refund_id),
    CONSTRAINT ck_booking_refunds_amount_non_negative CHECK (amount >= 0)
);

-- Points owed after a clawback larger than the available balance (positive entries) and their
-- repayment out of later earns (negative entries). Append-only; outstanding = SUM(points).
CREATE TABLE points_debt_entries (
    entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id text NOT NULL,
    points bigint NOT NULL,
    booking_id text,
    idempotency_key text NOT NULL,
    tx_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_points_debt_entries_idempotency_key UNIQUE (idempotency_key),
    CONSTRAINT ck_points_debt_entries_points_non_zero CHECK (points <> 0),
    CONSTRAINT fk_points_debt_entries_tx_id_wallet_transactions
        FOREIGN KEY (tx_id) REFERENCES wallet_transactions (tx_id)
);

CREATE INDEX ix_points_debt_entries_user ON points_debt_entries (user_id);

CREATE FUNCTION points_debt_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'points_debt_entries is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER points_debt_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON points_debt_entries
    FOR EACH ROW EXECUTE FUNCTION points_debt_entries_append_only()
"""

DOWNGRADE = """
DROP TABLE points_debt_entries;

DROP FUNCTION points_debt_entries_append_only();

DROP TABLE booking_refunds;

DROP TABLE booking_accruals;

DROP TABLE booking_events;

DROP TABLE campaigns
"""


def _execute_all(script: str) -> None:
    # asyncpg prepares each statement, so a script runs one statement at a time.
    for statement in script.split(";\n\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _execute_all(UPGRADE)


def downgrade() -> None:
    _execute_all(DOWNGRADE)
