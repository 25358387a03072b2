"""Ledger: tiers, wallets, holds, append-only wallet_transactions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE loyalty_tiers (
    code text PRIMARY KEY,
    name text NOT NULL,
    rank integer NOT NULL,
    threshold bigint NOT NULL,
    basis text NOT NULL DEFAULT 'lifetime',
    earn_multiplier_pct integer NOT NULL DEFAULT 100,
    redemption_cap_pct integer,
    redemption_cap_points bigint,
    benefits jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_loyalty_tiers_rank UNIQUE (rank),
    CONSTRAINT ck_loyalty_tiers_threshold_non_negative CHECK (threshold >= 0),
    CONSTRAINT ck_loyalty_tiers_basis_known CHECK (basis IN ('lifetime', 'trailing_12m')),
    CONSTRAINT ck_loyalty_tiers_multiplier_positive CHECK (earn_multiplier_pct > 0),
    CONSTRAINT ck_loyalty_tiers_cap_pct_range
        CHECK (redemption_cap_pct IS NULL OR redemption_cap_pct BETWEEN 0 AND 100),
    CONSTRAINT ck_loyalty_tiers_cap_points_non_negative
        CHECK (redemption_cap_points IS NULL OR redemption_cap_points >= 0)
);

INSERT INTO loyalty_tiers
    (code, name, rank, threshold, earn_multiplier_pct, redemption_cap_pct,
     redemption_cap_points, benefits)
VALUES
    ('bronze', 'Bronze', 1, 0, 100, 30, NULL, '{"perks": []}'),
    ('silver', 'Silver', 2, 5000, 125, 50, NULL, '{"perks": ["priority_support"]}'),
    ('gold', 'Gold', 3, 20000, 150, 100, NULL,
        '{"perks": ["priority_support", "free_cancellation"]}');

CREATE TABLE wallets (
    wallet_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL,
    balance bigint NOT NULL DEFAULT 0,
    held bigint NOT NULL DEFAULT 0,
    tier text NOT NULL DEFAULT 'bronze',
    lifetime_points bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_wallets_user_id UNIQUE (user_id),
    CONSTRAINT fk_wallets_tier_loyalty_tiers FOREIGN KEY (tier)
        REFERENCES loyalty_tiers (code) ON UPDATE CASCADE,
    CONSTRAINT ck_wallets_held_non_negative CHECK (held >= 0),
    CONSTRAINT ck_wallets_available_non_negative CHECK (balance - held >= 0)
);

CREATE TABLE holds (
    hold_id uuid PRIMARY KEY,
    wallet_id uuid NOT NULL,
    amount bigint NOT NULL,
    booking_id text,
    status text NOT NULL DEFAULT 'open',
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    CONSTRAINT fk_holds_wallet_id_wallets FOREIGN KEY (wallet_id) REFERENCES wallets (wallet_id),
    CONSTRAINT ck_holds_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_holds_status_known CHECK (status IN ('open', 'captured', 'released'))
);

CREATE INDEX ix_holds_wallet_open ON holds (wallet_id) WHERE status = 'open';

CREATE TABLE wallet_transactions (
    tx_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet_id uuid NOT NULL,
    type text NOT NULL,
    amount bigint NOT NULL,
    held_delta bigint NOT NULL DEFAULT 0,
    currency_amount bigint,
    currency text,
    counter_account text NOT NULL,
    booking_id text,
    payment_id text,
    hold_id uuid,
    reverses_tx_id bigint,
    idempotency_key text NOT NULL,
    request_hash text NOT NULL,
    description text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk_wallet_transactions_wallet_id_wallets
        FOREIGN KEY (wallet_id) REFERENCES wallets (wallet_id),
    CONSTRAINT fk_wallet_transactions_hold_id_holds
        FOREIGN KEY (hold_id) REFERENCES holds (hold_id),
    CONSTRAINT fk_wallet_transactions_reverses_tx_id_wallet_transactions
        FOREIGN KEY (reverses_tx_id) REFERENCES wallet_transactions (tx_id),
    CONSTRAINT uq_wallet_transactions_idempotency_key UNIQUE (idempotency_key),
    CONSTRAINT ck_wallet_transactions_type_known CHECK (type IN
        ('earn', 'burn', 'refund', 'adjustment', 'hold', 'capture', 'release', 'expire',
         'clawback'))
);

CREATE INDEX ix_wallet_transactions_wallet_tx ON wallet_transactions (wallet_id, tx_id);

CREATE INDEX ix_wallet_transactions_booking ON wallet_transactions (booking_id);

CREATE INDEX ix_wallet_transactions_reverses ON wallet_transactions (reverses_tx_id)
    WHERE reverses_tx_id IS NOT NULL;

-- A hold is resolved (captured or released) by at most one row, whatever the key.
CREATE UNIQUE INDEX uq_wallet_transactions_hold_resolution ON wallet_transactions (hold_id)
    WHERE type IN ('capture', 'release');

-- The ledger is append-only: corrections are new rows.
CREATE FUNCTION wallet_transactions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet_transactions is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER wallet_transactions_no_update_delete
    BEFORE UPDATE OR DELETE ON wallet_transactions
    FOR EACH ROW EXECUTE FUNCTION wallet_transactions_append_only();

CREATE TRIGGER wallet_transactions_no_truncate
    BEFORE TRUNCATE ON wallet_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_transactions_append_only();
"""

DOWNGRADE = """
DROP TABLE wallet_transactions;

DROP FUNCTION wallet_transactions_append_only();

DROP TABLE holds;

DROP TABLE wallets;

DROP TABLE loyalty_tiers;
"""


def _execute_all(script: str) -> None:
    # asyncpg prepares each statement, so a script runs one statement at a time;
    # statements are separated by blank lines.
    for statement in script.split(";\n\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _execute_all(UPGRADE)


def downgrade() -> None:
    _execute_all(DOWNGRADE)
