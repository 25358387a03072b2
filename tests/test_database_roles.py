"""The roles' bootstrap (migrations/bootstrap_roles.sql) and migration 0009, each on a database
of its own in the session's PostgreSQL: a database migrated before there were roles moves to
them, and the migration refuses an application role that is missing or has powers."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from alembic import command

import devstack
from loyalty.core.db import make_engine
from loyalty.ledger import earn, get_wallet


def _psql(pg: devstack.EmbeddedPostgres, url: str, sql: str) -> str:
    return subprocess.run(
        [str(pg.bin_dir / "psql"), url, "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


async def test_a_database_migrated_by_the_superuser_moves_to_the_roles(
    embedded_postgres: devstack.EmbeddedPostgres,
) -> None:
    # As releases before the roles did: one superuser login migrates and runs the service.
    admin_url = embedded_postgres.ensure_database("loyalty_before_roles")
    await asyncio.to_thread(command.upgrade, devstack.alembic_config(admin_url), "0008")
    _psql(embedded_postgres, admin_url, "SELECT 1 FROM ledger_earn('old-user', 700, 'old', 'h')")

    # The administrator runs the bootstrap (which hands the objects over), then the owner
    # migrates; alembic runs its own event loop, so in a thread of its own.
    database = await asyncio.to_thread(embedded_postgres.service_database, "loyalty_before_roles")

    owners = _psql(
        embedded_postgres,
        admin_url,
        "SELECT string_agg(DISTINCT pg_get_userbyid(owner), ',') FROM ("
        " SELECT relowner FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " UNION ALL SELECT proowner FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        " UNION ALL SELECT typowner FROM pg_type WHERE typnamespace = 'public'::regnamespace"
        " UNION ALL SELECT nspowner FROM pg_namespace WHERE nspname = 'public'"
        " UNION ALL SELECT datdba FROM pg_database WHERE datname = 'loyalty_before_roles'"
        ") AS o(owner)",
    )
    assert owners == devstack.OWNER_ROLE
    engine = make_engine(database.app_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            assert (await get_wallet(conn, "old-user")).balance == 700
            result = await earn(conn, user_id="old-user", points=5, idempotency_key="new")
            assert result.wallet.balance == 705
    finally:
        await engine.dispose()


def test_the_migration_refuses_an_application_role_missing_or_with_powers(
    embedded_postgres: devstack.EmbeddedPostgres,
) -> None:
    role = "loyalty_app_refused"
    database = embedded_postgres.service_database(
        "loyalty_roles_refused", app_role=role, migrate=False
    )
    with pytest.raises(RuntimeError, match="'nobody' does not exist"):
        devstack.run_migrations(database.owner_url, app_role="nobody")

    admin_url = embedded_postgres.uri()
    for power in ("CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS", "SUPERUSER"):
        _psql(embedded_postgres, admin_url, f"ALTER ROLE {role} {power}")
        with pytest.raises(RuntimeError, match="must not be a superuser, create roles"):
            devstack.run_migrations(database.owner_url, app_role=role)
        _psql(embedded_postgres, admin_url, f"ALTER ROLE {role} NO{power}")

    _psql(embedded_postgres, admin_url, f"GRANT {devstack.OWNER_ROLE} TO {role}")
    with pytest.raises(RuntimeError, match="or be a member of the role the migrations run as"):
        devstack.run_migrations(database.owner_url, app_role=role)
    _psql(embedded_postgres, admin_url, f"REVOKE {devstack.OWNER_ROLE} FROM {role}")

    devstack.run_migrations(database.owner_url, app_role=role)  # now it may
    granted = _psql(
        embedded_postgres,
        database.owner_url,
        f"SELECT has_function_privilege('{role}', 'ledger_earn(text, bigint, text, text, text, "
        "text, bigint, text, text, text, jsonb, integer)', 'EXECUTE')",  # 0012's signature
    )
    assert granted == "t"
