"""Points expiry reminders: which lots a customer has been reminded of, so a lot is reminded
once however many daily expiry runs see it inside the reminder window (loyalty.expiry).

Append-only, like the ledger it annotates: the application role may read and insert.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from alembic import op

from migrations import roles

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE point_lot_reminders (
    lot_id bigint NOT NULL,
    wallet_id uuid NOT NULL,
    expiry_id text NOT NULL,  -- the expiry run that reminded (its first workflow run's id)
    notification_key text NOT NULL,  -- the outbox row that told the customer
    points bigint NOT NULL,  -- left in the lot when reminded
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_point_lot_reminders PRIMARY KEY (lot_id),
    CONSTRAINT fk_point_lot_reminders_lot_id_point_lots FOREIGN KEY (lot_id)
        REFERENCES point_lots (lot_id),
    CONSTRAINT fk_point_lot_reminders_wallet_id_wallets FOREIGN KEY (wallet_id)
        REFERENCES wallets (wallet_id)
)""")
    if roles.app_role_exists():
        roles.grant("SELECT, INSERT", "point_lot_reminders")


def downgrade() -> None:
    op.execute("DROP TABLE point_lot_reminders")
