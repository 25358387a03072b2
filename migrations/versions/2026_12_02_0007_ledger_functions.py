"""Ledger: the posting protocol as PostgreSQL functions, one per posting kind (see the SQL file).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

from migrations import sql_files

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTIONS = (
    "ledger_release(uuid, text, text, text, jsonb)",
    "ledger_capture(uuid, text, text, bigint, text, text, jsonb)",
    "ledger_resolve_hold(uuid, text, text, text, bigint, text, text, jsonb)",
    "ledger_hold(text, bigint, text, text, uuid, timestamptz, text, text, jsonb)",
    "ledger_refund(bigint, bigint, text, text, text, jsonb)",
    "ledger_expire(text, bigint, text, text, text, jsonb)",
    "ledger_clawback(text, bigint, text, text, bigint, text, text, text, jsonb)",
    "ledger_burn(text, bigint, text, text, text, text, bigint, text, text, jsonb)",
    "ledger_adjust(text, bigint, text, text, text, text)",
    "ledger_earn(text, bigint, text, text, text, text, bigint, text, text, text, jsonb)",
    "ledger_post(uuid, text, bigint, bigint, bigint, text, text, text, text, text, uuid, bigint, "
    "bigint, text, text, jsonb)",
    "ledger_wallet(text, boolean)",
    "ledger_check_points(bigint, boolean)",
    "ledger_refuse(text, text, text, jsonb)",
    "ledger_with_hold(ledger_posting, holds)",
    "ledger_result(wallet_transactions, wallets, boolean, holds)",
)


def upgrade() -> None:
    sql_files.run("0007_ledger_functions.sql")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP TYPE ledger_posting")
