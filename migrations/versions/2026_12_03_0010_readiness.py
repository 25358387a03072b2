"""Readiness: the application role may read which revision the schema is at, so the API's
/health/ready can answer whether the migrations are at head (it reads nothing else new).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op

from migrations import roles

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles.grant("SELECT", "alembic_version")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON alembic_version FROM {roles.quoted(roles.app_role())}")
