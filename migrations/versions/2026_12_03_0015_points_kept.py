"""Points kept: a clawback lowers lifetime points (a refund undoes the tier credit it gave), and
existing wallets get lifetime points recomputed from the ledger (see the SQL file for the rule).

ledger_clawback gains a defaulted parameter (p_lifetime_points), so it is dropped and created
again: it is made SECURITY DEFINER and granted to the application role as migration 0009 does
for every posting function.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from alembic import op
from sqlalchemy import text

from migrations import roles, sql_files

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

NEW = "ledger_clawback(text, bigint, text, text, bigint, text, text, text, jsonb, bigint)"
OLD = "ledger_clawback(text, bigint, text, text, bigint, text, text, text, jsonb)"


def _secure(signature: str) -> None:
    """What migration 0009 does to a posting function: it runs as the owner with a fixed
    search_path, and only the application role may call it."""
    schema: str = op.get_bind().execute(text("SELECT current_schema()")).scalar_one()
    op.execute(
        f"ALTER FUNCTION {signature} SECURITY DEFINER SET search_path = "
        f"{roles.quoted(schema)}, pg_temp"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    if roles.app_role_exists():
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {roles.quoted(roles.app_role())}")


def upgrade() -> None:
    sql_files.run("0015_points_kept.sql")
    _secure(NEW)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {NEW}")
    # The clawback as migration 0007 wrote it: lifetime points untouched.
    original = sql_files.statements((sql_files.SQL_DIR / "0007_ledger_functions.sql").read_text())
    (clawback,) = [s for s in original if "CREATE FUNCTION ledger_clawback(" in s]
    op.execute(clawback)
    _secure(OLD)
    # Lifetime points as they were counted before: every point ever earned.
    op.execute("""
UPDATE wallets w SET lifetime_points = earned.points
FROM (
    SELECT wl.wallet_id, COALESCE(SUM(t.amount), 0) AS points
    FROM wallets wl LEFT JOIN wallet_transactions t
        ON t.wallet_id = wl.wallet_id AND t.type = 'earn'
    GROUP BY wl.wallet_id
) earned
WHERE w.wallet_id = earned.wallet_id AND w.lifetime_points <> earned.points""")
