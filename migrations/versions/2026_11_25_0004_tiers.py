"""Tiers: history of tier changes, pending downgrades (grace period), indexes for the trailing
window and the backoffice customer lists.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE tier_history (
    history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wallet_id uuid NOT NULL,
    from_tier text NOT NULL,
    to_tier text NOT NULL,
    direction text NOT NULL,
    reason text NOT NULL,
    evaluation_id text,
    lifetime_points bigint NOT NULL,
    trailing_points bigint NOT NULL,
    as_of timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk_tier_history_wallet_id_wallets
        FOREIGN KEY (wallet_id) REFERENCES wallets (wallet_id),
    CONSTRAINT ck_tier_history_direction_known CHECK (direction IN ('upgrade', 'downgrade')),
    CONSTRAINT ck_tier_history_reason_known CHECK (reason IN ('evaluation', 'realtime')),
    -- One change per wallet per evaluation: a retried batch cannot record a second one.
    CONSTRAINT uq_tier_history_evaluation_id UNIQUE (evaluation_id, wallet_id)
);

CREATE INDEX ix_tier_history_wallet ON tier_history (wallet_id, history_id);

-- A wallet whose points no longer earn its tier keeps it for the grace period, counted from
-- the first evaluation that saw it short. The row goes when the wallet re-qualifies or drops.
CREATE TABLE wallet_tier_status (
    wallet_id uuid PRIMARY KEY,
    downgrade_pending_since timestamptz NOT NULL,
    downgrade_to text NOT NULL,
    evaluation_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk_wallet_tier_status_wallet_id_wallets
        FOREIGN KEY (wallet_id) REFERENCES wallets (wallet_id)
);

-- Trailing-window sums read only this index (index-only scan per wallet).
CREATE INDEX ix_wallet_transactions_qualifying
    ON wallet_transactions (wallet_id, created_at) INCLUDE (amount)
    WHERE type IN ('earn', 'clawback');

-- Backoffice: customers by tier, keyset-paginated on user_id.
CREATE INDEX ix_wallets_tier_user ON wallets (tier, user_id)
"""

DOWNGRADE = """
DROP INDEX ix_wallets_tier_user;

DROP INDEX ix_wallet_transactions_qualifying;

DROP TABLE wallet_tier_status;

DROP TABLE tier_history
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
