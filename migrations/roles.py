"""The application role in migrations: its name, and grants to it.

The migrations run as the owner role (MIGRATION_DATABASE_URL), which owns every object they
make. The API and the worker log in as the application role, which holds only what the
migrations grant it: a migration that adds a table grants the application role what the
service does with it (`grant`), and nothing else; migration 0009 holds the grants of the tables
made before it and the rules (the ledger moves only through the posting functions).
"""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from loyalty.core.settings import get_settings


def app_role() -> str:
    """`-x app_role=...`, or the DATABASE_APP_ROLE setting."""
    return (
        context.get_x_argument(as_dictionary=True).get("app_role")
        or get_settings().database_app_role
    )


def quoted(identifier: str) -> str:
    return str(op.get_bind().dialect.identifier_preparer.quote_identifier(identifier))


def app_role_exists() -> bool:
    found = op.get_bind().execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": app_role()}
    )
    return found.first() is not None


def grant(privileges: str, table: str) -> None:
    """`GRANT <privileges> ON <table> TO <application role>`, e.g. grant("SELECT, INSERT", "x")."""
    op.execute(f"GRANT {privileges} ON {quoted(table)} TO {quoted(app_role())}")
