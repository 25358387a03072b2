"""Earning: what an earn reads (the locked wallet and its facts) in one round trip (see the SQL
file).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

from migrations import sql_files

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sql_files.run("0008_earning_facts.sql")


def downgrade() -> None:
    op.execute("DROP FUNCTION earning_facts(text, text, text, timestamptz)")
