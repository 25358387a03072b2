"""The service's database login (the application role) against real PostgreSQL: every way it
could rewrite the ledger is refused, its privileges are exactly what the service's statements
need, and the postings still work through the posting functions, which run as the owner.

`engine` connects as the application role (tests/conftest.py); `owner_engine` as the role that
owns the schema, which reads the state back after each attack."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

import devstack
from loyalty import ledger
from loyalty.core import db
from loyalty.earning import facts

INSUFFICIENT_PRIVILEGE = "42501"

# What the application role may do to each table: the service's own statements, no more
# (migration 0009 grants it). Every table of the schema is listed, so a new one is decided on.
EXPECTED_TABLE_PRIVILEGES: dict[str, set[str]] = {
    "alembic_version": {"SELECT"},  # /health/ready reads the revision (0010)
    "wallet_transactions": {"SELECT"},
    "holds": {"SELECT"},
    "point_lots": {"SELECT"},
    "lot_movements": {"SELECT"},
    "point_lot_reminders": {"SELECT", "INSERT"},  # append-only: which lots were reminded (0016)
    "wallets": {"SELECT", "UPDATE (tier)", "UPDATE (updated_at)"},
    "loyalty_tiers": {"SELECT", "INSERT", "UPDATE"},
    "tier_history": {"SELECT", "INSERT"},
    "wallet_tier_status": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "stripe_events": {"SELECT", "INSERT", "UPDATE"},
    "notification_outbox": {"SELECT", "INSERT", "UPDATE"},
    "campaigns": {"SELECT", "INSERT", "UPDATE"},
    "booking_events": {"SELECT", "INSERT"},
    "booking_accruals": {"SELECT", "INSERT", "UPDATE"},
    "booking_refunds": {"SELECT", "INSERT", "UPDATE"},
    "points_debt_entries": {"SELECT", "INSERT"},
    "voucher_products": {"SELECT", "INSERT", "UPDATE"},
    "voucher_code_pool": {"SELECT", "INSERT", "UPDATE"},
    "voucher_purchases": {"SELECT", "INSERT", "UPDATE"},
    "voucher_customer_counts": {"SELECT", "INSERT", "UPDATE"},
    "vouchers": {"SELECT", "INSERT", "UPDATE"},
    "reconciliation_findings": {"SELECT", "INSERT"},
    "point_rates": {"SELECT", "INSERT"},  # insert-only: admins add rates (0013)
}
# The functions of the schema the application role may call: the posting functions (SECURITY
# DEFINER, run as the owner) and the earn's read.
POSTING_FUNCTIONS = {
    "ledger_wallet",
    "ledger_earn",
    "ledger_adjust",
    "ledger_burn",
    "ledger_refund",
    "ledger_clawback",
    "ledger_expire_lot",
    "ledger_hold",
    "ledger_capture",
    "ledger_release",
}
CALLABLE_FUNCTIONS = POSTING_FUNCTIONS | {"earning_facts"}


@dataclass(frozen=True)
class Target:
    """A wallet with 1,000 points earned and an open hold of 300, made as the application role."""

    user_id: str
    wallet_id: uuid.UUID
    hold_id: uuid.UUID


@pytest.fixture
async def target(engine: AsyncEngine, user_id: str) -> Target:
    async with db.transaction(engine) as conn:
        earned = await ledger.earn(conn, user_id=user_id, points=1000, idempotency_key=user_id)
        hold, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=300,
            idempotency_key=f"{user_id}:hold",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    return Target(user_id, earned.wallet.wallet_id, hold.hold_id)


# Each as the issue reported it (the service's login could do them all), then its relatives.
ATTACKS: dict[str, str] = {
    "disable the append-only trigger": (
        "ALTER TABLE wallet_transactions DISABLE TRIGGER wallet_transactions_no_update_delete"
    ),
    "disable every trigger of the ledger": "ALTER TABLE wallet_transactions DISABLE TRIGGER ALL",
    "drop the append-only trigger": (
        "DROP TRIGGER wallet_transactions_no_update_delete ON wallet_transactions"
    ),
    "replace the append-only trigger's function": (
        "CREATE OR REPLACE FUNCTION wallet_transactions_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
    ),
    "SET session_replication_role = replica": "SET session_replication_role = replica",
    "set_config('session_replication_role', 'replica')": (
        "SELECT set_config('session_replication_role', 'replica', false)"
    ),
    "drop the ledger table": "DROP TABLE wallet_transactions",
    "drop the wallets with everything on them": "DROP TABLE wallets CASCADE",
    "update wallets.balance": "UPDATE wallets SET balance = balance + 1000000 WHERE user_id = :u",
    "update wallets.held": "UPDATE wallets SET held = 0 WHERE user_id = :u",
    "update wallets.lifetime_points": (
        "UPDATE wallets SET lifetime_points = 1000000 WHERE user_id = :u"
    ),
    "update holds.status": (
        "UPDATE holds SET status = 'released', resolved_at = now() WHERE hold_id = :h"
    ),
    "drop the available >= 0 constraint": (
        "ALTER TABLE wallets DROP CONSTRAINT ck_wallets_available_non_negative"
    ),
    "create a role": "CREATE ROLE intruder LOGIN SUPERUSER",
    "make itself a superuser": "ALTER ROLE CURRENT_USER SUPERUSER",
    "become the owner": f"SET ROLE {devstack.OWNER_ROLE}",
    "grant itself the owner": f"GRANT {devstack.OWNER_ROLE} TO CURRENT_USER",
    "insert a made-up earn row into the ledger": (
        "INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account, "
        "idempotency_key, request_hash) VALUES (:w, 'earn', 1000000, 'issuance:base', "
        "'forged:' || :u, 'forged')"
    ),
    "post through the protocol without its checks (ledger_post)": (
        "SELECT * FROM ledger_post(:w, 'earn', 1000000, 0, 1000000, 'issuance:base', "
        "'forged:' || :u, 'forged', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}')"
    ),
    "insert a wallet with a balance": (
        "INSERT INTO wallets (user_id, balance, lifetime_points) "
        "VALUES ('forged:' || :u, 1000000, 1000000)"
    ),
    "insert a hold": (
        "INSERT INTO holds (hold_id, wallet_id, amount, expires_at) "
        "VALUES (gen_random_uuid(), :w, 1, now())"
    ),
    "update ledger rows": "UPDATE wallet_transactions SET amount = amount * 2 WHERE wallet_id = :w",
    "delete ledger rows": "DELETE FROM wallet_transactions WHERE wallet_id = :w",
    "truncate the ledger": "TRUNCATE wallet_transactions CASCADE",
    "truncate the wallets": "TRUNCATE wallets CASCADE",
    "truncate the holds": "TRUNCATE holds CASCADE",
    "delete a hold": "DELETE FROM holds WHERE hold_id = :h",
    "refill a lot": "UPDATE point_lots SET remaining = points WHERE wallet_id = :w",
    "push a lot's expiry out": "UPDATE point_lots SET expires_at = NULL WHERE wallet_id = :w",
    "open a lot": (
        "INSERT INTO point_lots (wallet_id, points, remaining) VALUES (:w, 1000000, 1000000)"
    ),
    "forget which lots a spending drew from": "DELETE FROM lot_movements",
    "draw from lots through the protocol's helper": ("SELECT ledger_lots_draw(1, :w, 1)"),
    "make a posting function run as the caller": "ALTER FUNCTION ledger_earn SECURITY INVOKER",
    "create a table": "CREATE TABLE intruder (x int)",
    "create a temporary table that hides the wallets": "CREATE TEMPORARY TABLE wallets (x int)",
    "lock the ledger against everyone": "LOCK TABLE wallet_transactions IN ACCESS EXCLUSIVE MODE",
    "read the server's files": "SELECT pg_read_file('postgresql.conf')",
}


def _sqlstate(err: DBAPIError) -> str | None:
    driver_error = err.orig.__cause__ if err.orig is not None else None
    return getattr(driver_error, "sqlstate", None)


async def _state(owner_engine: AsyncEngine, target: Target) -> dict[str, Any]:
    """What the attacks would change, read by the owner."""
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT array_agg(tgname || '=' || tgenabled::text ORDER BY tgname) "
                    "        FROM pg_trigger WHERE tgrelid = 'wallet_transactions'::regclass) "
                    "         AS triggers, "
                    "  (SELECT count(*) FROM pg_constraint "
                    "   WHERE conname = 'ck_wallets_available_non_negative') AS available_check, "
                    "  (SELECT prosecdef FROM pg_proc WHERE proname = 'ledger_earn') AS definer, "
                    "  (SELECT count(*) FROM pg_roles WHERE rolname = 'intruder') AS intruders, "
                    "  (SELECT count(*) FROM pg_class WHERE relname = 'intruder') AS tables, "
                    "  (SELECT rolsuper FROM pg_roles WHERE rolname = :app) AS app_super, "
                    "  (SELECT array_agg(tx_id || ':' || amount ORDER BY tx_id) "
                    "   FROM wallet_transactions WHERE wallet_id = :w) AS ledger_rows, "
                    "  (SELECT count(*) FROM wallet_transactions "
                    "   WHERE idempotency_key LIKE 'forged:%') AS forged, "
                    "  (SELECT count(*) FROM wallets WHERE user_id LIKE 'forged:%') AS forged_w, "
                    "  (SELECT array[balance, held, lifetime_points] FROM wallets "
                    "   WHERE wallet_id = :w) AS wallet, "
                    "  (SELECT status FROM holds WHERE hold_id = :h) AS hold_status, "
                    "  (SELECT count(*) FROM holds WHERE wallet_id = :w) AS holds"
                ),
                {"w": target.wallet_id, "h": target.hold_id, "app": devstack.APP_ROLE},
            )
        ).mappings()
        return dict(row.one())


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_the_application_role_is_refused(
    attack: str, engine: AsyncEngine, owner_engine: AsyncEngine, target: Target
) -> None:
    before = await _state(owner_engine, target)
    assert before["wallet"] == [1000, 300, 1000] and before["hold_status"] == "open"
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError) as refused:
            await conn.execute(
                text(ATTACKS[attack]),
                {"u": target.user_id, "w": target.wallet_id, "h": target.hold_id},
            )
        await conn.rollback()
    assert _sqlstate(refused.value) == INSUFFICIENT_PRIVILEGE, str(refused.value)
    assert await _state(owner_engine, target) == before


async def test_the_service_logs_in_as_a_role_without_powers(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT current_user AS who, rolsuper, rolcreaterole, rolcreatedb, "
                    "rolreplication, rolbypassrls, "
                    "pg_has_role(current_user, :owner, 'MEMBER') AS owner_member, "
                    "current_setting('session_replication_role') AS replication_role, "
                    "has_database_privilege(current_database(), 'TEMPORARY') AS temp, "
                    "has_schema_privilege('public', 'CREATE') AS create_in_schema "
                    "FROM pg_roles WHERE rolname = current_user"
                ),
                {"owner": devstack.OWNER_ROLE},
            )
        ).mappings()
        assert dict(row.one()) == {
            "who": devstack.APP_ROLE,
            "rolsuper": False,
            "rolcreaterole": False,
            "rolcreatedb": False,
            "rolreplication": False,
            "rolbypassrls": False,
            "owner_member": False,
            "replication_role": "origin",
            "temp": False,
            "create_in_schema": False,
        }


async def test_the_application_role_holds_exactly_the_services_privileges(
    owner_engine: AsyncEngine,
) -> None:
    async with owner_engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT relname FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v')"
                )
            )
        ).scalars()
        granted = (
            await conn.execute(
                text(
                    "SELECT c.relname, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
                    "WHERE c.relnamespace = 'public'::regnamespace "
                    "AND a.grantee = CAST(:app AS regrole) "
                    "UNION ALL SELECT c.relname, a.privilege_type || ' (' || att.attname || ')' "
                    "FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid, "
                    "aclexplode(att.attacl) a WHERE c.relnamespace = 'public'::regnamespace "
                    "AND a.grantee = CAST(:app AS regrole) "
                    "UNION ALL SELECT c.relname, 'PUBLIC ' || a.privilege_type "
                    "FROM pg_class c, aclexplode(c.relacl) a "
                    "WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0"
                ),
                {"app": devstack.APP_ROLE},
            )
        ).all()
        actual: dict[str, set[str]] = {table: set() for table in tables}
        for table, privilege in granted:
            actual.setdefault(table, set()).add(privilege)
    assert actual == EXPECTED_TABLE_PRIVILEGES


async def test_only_the_posting_functions_run_as_the_owner(owner_engine: AsyncEngine) -> None:
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT proname, prosecdef, pg_get_userbyid(proowner) AS owner, proconfig, "
                    "has_function_privilege(CAST(:app AS regrole), oid, 'EXECUTE') AS app, "
                    "EXISTS (SELECT FROM aclexplode(COALESCE(proacl, acldefault('f', proowner))) "
                    "        WHERE grantee = 0) AS public "
                    "FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
                ),
                {"app": devstack.APP_ROLE},
            )
        ).mappings()
        functions = {row["proname"]: row for row in rows}
    assert {name for name, f in functions.items() if f["app"]} == CALLABLE_FUNCTIONS
    assert {name for name, f in functions.items() if f["prosecdef"]} == POSTING_FUNCTIONS
    for name in POSTING_FUNCTIONS:
        f = functions[name]
        assert f["owner"] == devstack.OWNER_ROLE, name
        assert f["proconfig"] == ["search_path=public, pg_temp"], name
        assert not f["public"], name
    assert not functions["ledger_post"]["app"]


async def test_postings_work_as_the_application_role(
    engine: AsyncEngine, user_id: str, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    """Earn, hold, capture, release, burn, refund, clawback, expire, adjust and the earn's read,
    through the service's own functions, as the application role."""
    later = datetime.now(UTC) + timedelta(minutes=15)
    async with db.transaction(engine) as conn:
        who = (await conn.execute(text("SELECT current_user"))).scalar_one()
        assert who == devstack.APP_ROLE
        opened = await ledger.open_wallet(conn, user_id)
        assert (opened.balance, opened.tier) == (0, "bronze")
        await ledger.earn(conn, user_id=user_id, points=1000, idempotency_key=f"{user_id}:earn")
        hold, _ = await ledger.hold(
            conn, user_id=user_id, points=300, idempotency_key=f"{user_id}:h1", expires_at=later
        )
        captured = await ledger.capture(
            conn, hold_id=hold.hold_id, idempotency_key=f"{user_id}:c1", currency_amount=300
        )
        released_hold, _ = await ledger.hold(
            conn, user_id=user_id, points=100, idempotency_key=f"{user_id}:h2", expires_at=later
        )
        await ledger.release(conn, hold_id=released_hold.hold_id, idempotency_key=f"{user_id}:r")
        burned = await ledger.burn(
            conn, user_id=user_id, points=50, idempotency_key=f"{user_id}:b", counter_account="v"
        )
        await ledger.refund(
            conn, reverses_tx_id=burned.posting.tx_id, points=50, idempotency_key=f"{user_id}:rf"
        )
        await ledger.refund(
            conn,
            reverses_tx_id=captured.posting.tx_id,
            points=100,
            idempotency_key=f"{user_id}:rf2",
        )
        await ledger.clawback(conn, user_id=user_id, points=10, idempotency_key=f"{user_id}:cb")
        adjusted = await ledger.adjust(
            conn, user_id=user_id, points=-15, reason="goodwill", idempotency_key=f"{user_id}:a"
        )
        await ledger.adjust(
            conn,
            user_id=user_id,
            points=5,
            reason="short-lived",
            idempotency_key=f"{user_id}:a2",
            validity_months=1,
        )
        lots = await ledger.lots_of(conn, opened.wallet_id)
        lot = min((lot for lot in lots if lot.remaining), key=lambda lot: lot.expires_at or later)
        expired = await ledger.expire_lot(
            conn, lot_id=lot.lot_id, as_of=datetime.now(UTC) + timedelta(days=40)
        )
        assert expired is not None and expired.posting.amount == -5
        # the earn's read locks the wallet (SELECT ... FOR UPDATE) and opens a new one
        wallet, earn_facts = await facts.lock_and_read(
            conn, user_id, "bk-roles", f"{user_id}:next", datetime.now(UTC)
        )
        newcomer, _ = await facts.lock_and_read(
            conn, f"{user_id}-new", "bk-roles-2", f"{user_id}:new", datetime.now(UTC)
        )
        locked = await ledger.lock_wallet(conn, user_id)
        await conn.execute(
            text("UPDATE wallets SET tier = 'silver', updated_at = now() WHERE user_id = :u"),
            {"u": user_id},
        )
    # 1000 - 300 + 0 - 50 + 50 + 100 - 10 - 15 + 5 - 5
    assert adjusted.wallet.balance + 5 - 5 == wallet.balance == locked.balance == 775
    # lifetime: 1000 earned less the 10 clawed back (a clawback takes its tier credit back)
    assert (adjusted.wallet.held, adjusted.wallet.lifetime_points) == (0, 990)
    assert newcomer.balance == 0 and not earn_facts.earn_exists
    async with engine.connect() as conn:
        final = await ledger.get_wallet(conn, user_id)
        replayed = await ledger.earn(
            conn, user_id=user_id, points=1000, idempotency_key=f"{user_id}:earn"
        )
    assert (final.balance, final.tier) == (775, "silver")
    assert replayed.replayed and replayed.wallet.balance == 775
    assert await make_wallet(500, spent=100, held=50)  # the tests' own seeding, as the app role
