"""Points expire in lots: every credit opens a lot, every debit draws from the lots expiring
first, and the movements say which (the rules are in migrations/sql/0012_point_lots.sql).

The posting functions that change here are redefined: ledger_post (the protocol, now moving lots
too), ledger_earn and ledger_adjust (a lot's own validity), ledger_refund and ledger_resolve_hold
(points go back to their lots), and ledger_expire (a user's points) gives way to
ledger_expire_lot (a due lot's rest, once per lot). The application role reads the lots;
only the posting functions write them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op
from sqlalchemy import text

from migrations import roles, sql_files

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Called by the application role; run as the owner (as migration 0009 set the others).
POSTING_FUNCTIONS = ("ledger_earn", "ledger_adjust", "ledger_refund", "ledger_expire_lot")
# Called only from inside the posting functions.
INTERNAL_FUNCTIONS = (
    "ledger_post",
    "ledger_lot_expiry",
    "ledger_lots_open",
    "ledger_lots_draw",
    "ledger_lots_return",
)


def upgrade() -> None:
    sql_files.run("0012_point_lots.sql")
    schema: str = op.get_bind().execute(text("SELECT current_schema()")).scalar_one()
    s = roles.quoted(schema)
    for function in (*POSTING_FUNCTIONS, *INTERNAL_FUNCTIONS, "ledger_resolve_hold"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    for function in POSTING_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SECURITY DEFINER SET search_path = {s}, pg_temp")
        if roles.app_role_exists():
            op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {roles.quoted(roles.app_role())}")
    if roles.app_role_exists():
        roles.grant("SELECT", "point_lots")
        roles.grant("SELECT", "lot_movements")


def downgrade() -> None:
    """The functions of migration 0007 again, without lots (expire postings keep their lot id
    in metadata; the lots themselves go)."""
    for function in (*POSTING_FUNCTIONS, *INTERNAL_FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP INDEX uq_wallet_transactions_hold_placed")
    op.execute("DROP TABLE lot_movements")
    op.execute("DROP TABLE point_lots")
    op.execute("ALTER TABLE campaigns DROP COLUMN points_validity_months")
    restored = ("ledger_post", "ledger_earn", "ledger_adjust", "ledger_expire", "ledger_refund")
    for statement in sql_files.statements(sql_files.read("0007_ledger_functions.sql")):
        if any(f"CREATE FUNCTION {name}(" in statement for name in restored):
            op.execute(statement)
        elif "CREATE FUNCTION ledger_resolve_hold(" in statement:
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    schema: str = op.get_bind().execute(text("SELECT current_schema()")).scalar_one()
    s = roles.quoted(schema)
    for function in ("ledger_earn", "ledger_adjust", "ledger_expire", "ledger_refund"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"ALTER FUNCTION {function} SECURITY DEFINER SET search_path = {s}, pg_temp")
        if roles.app_role_exists():
            op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {roles.quoted(roles.app_role())}")
