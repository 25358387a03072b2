"""Least-privilege roles: the application role gets what the service does and no more, and the
ledger moves only through the posting functions.

The migrations run as the owner role, which owns every table, type and function. The API and
the worker log in as the application role (DATABASE_APP_ROLE, default loyalty_app; an
administrator creates both roles once, migrations/bootstrap_roles.sql). This migration:

- makes the posting functions (ledger_earn ... ledger_release, and ledger_wallet, which opens a
  wallet) SECURITY DEFINER: they run as the owner, with a fixed search_path so nothing the
  caller puts on its path can stand in for a table or function. The application role may
  EXECUTE them and no other function of the schema; ledger_post, the protocol without its
  checks, is not callable by it;
- grants no INSERT, UPDATE, DELETE or TRUNCATE on wallet_transactions or holds, and of wallets
  only UPDATE of `tier` (tier moves are the tiers feature's own statements) and `updated_at`:
  every posting, hold and balance change goes through a function, which does its own inserts
  and updates as the owner. SELECT on the ledger stays (history, views, invariants);
- grants the other tables exactly the verbs the service's statements use.

A table added later gets its grants in its own migration (migrations/roles.py `grant`).
tests/ledger/test_roles.py holds the same list, and the attacks it refuses.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

from migrations import roles

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Run as the owner; the only way the application role changes the ledger.
POSTING_FUNCTIONS = (
    "ledger_wallet",
    "ledger_earn",
    "ledger_adjust",
    "ledger_burn",
    "ledger_refund",
    "ledger_clawback",
    "ledger_expire",
    "ledger_hold",
    "ledger_capture",
    "ledger_release",
)
# Run as the caller: it reads, and opens the wallet through ledger_wallet.
CALLER_FUNCTIONS = ("earning_facts",)

# What the service's statements do to each table (loyalty/*: grep INSERT, UPDATE, DELETE).
TABLE_PRIVILEGES = {
    "wallet_transactions": "SELECT",
    "holds": "SELECT",
    # tiers: real-time and nightly moves; SELECT ... FOR UPDATE locks need an UPDATE privilege.
    "wallets": "SELECT, UPDATE (tier, updated_at)",
    # tiers admin; LOCK TABLE ... SHARE ROW EXCLUSIVE needs UPDATE.
    "loyalty_tiers": "SELECT, INSERT, UPDATE",
    "tier_history": "SELECT, INSERT",
    "wallet_tier_status": "SELECT, INSERT, UPDATE, DELETE",
    "stripe_events": "SELECT, INSERT, UPDATE",
    "notification_outbox": "SELECT, INSERT, UPDATE",
    "campaigns": "SELECT, INSERT, UPDATE",
    "booking_events": "SELECT, INSERT",
    "booking_accruals": "SELECT, INSERT, UPDATE",
    "booking_refunds": "SELECT, INSERT, UPDATE",
    "points_debt_entries": "SELECT, INSERT",
    "voucher_products": "SELECT, INSERT, UPDATE",
    "voucher_code_pool": "SELECT, INSERT, UPDATE",
    "voucher_purchases": "SELECT, INSERT, UPDATE",
    "voucher_customer_counts": "SELECT, INSERT, UPDATE",
    "vouchers": "SELECT, INSERT, UPDATE",
}


def upgrade() -> None:
    bind = op.get_bind()
    schema: str = bind.execute(text("SELECT current_schema()")).scalar_one()
    app, s = roles.quoted(roles.app_role()), roles.quoted(schema)
    _refuse_unsafe_setup(schema)

    # A clean slate: the application role holds exactly what follows.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC, {app}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM PUBLIC, {app}")
    op.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {s} FROM PUBLIC, {app}")
    op.execute(f"GRANT USAGE ON SCHEMA {s} TO {app}")

    for function in POSTING_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SECURITY DEFINER SET search_path = {s}, pg_temp")
    for function in (*POSTING_FUNCTIONS, *CALLER_FUNCTIONS):
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {app}")
    for table, privileges in TABLE_PRIVILEGES.items():
        roles.grant(privileges, table)


def downgrade() -> None:
    bind = op.get_bind()
    schema: str = bind.execute(text("SELECT current_schema()")).scalar_one()
    s = roles.quoted(schema)
    for function in POSTING_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SECURITY INVOKER RESET search_path")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO PUBLIC")
    if roles.app_role_exists():
        app = roles.quoted(roles.app_role())
        op.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {s} FROM {app}")
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {app}")
        op.execute(f"REVOKE USAGE ON SCHEMA {s} FROM {app}")


def _refuse_unsafe_setup(schema: str) -> None:
    """Stop, saying what to do, where the grants would not make the application role least
    privileged: no such role, a role with powers of its own or the owner's, objects the
    migrating login does not own, or a schema anyone may create in."""
    bind, role = op.get_bind(), roles.app_role()
    found = (
        bind.execute(
            text(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication "
                "OR rolbypassrls AS powerful, pg_has_role(rolname, current_user, 'MEMBER') "
                "AS owner_member FROM pg_roles WHERE rolname = :r"
            ),
            {"r": role},
        )
        .mappings()
        .first()
    )
    if found is None:
        raise RuntimeError(
            f"the application role {role!r} does not exist: an administrator creates it first "
            "(migrations/bootstrap_roles.sql; docs/operations.md, Database roles), or set "
            "DATABASE_APP_ROLE to its name"
        )
    if found["powerful"] or found["owner_member"]:
        raise RuntimeError(
            f"the application role {role!r} must not be a superuser, create roles or databases, "
            "replicate, bypass row security, or be a member of the role the migrations run as"
        )
    foreign = bind.execute(
        text(
            "SELECT relname FROM pg_class c WHERE relnamespace = CAST(:s AS regnamespace) "
            "AND relkind IN ('r', 'p', 'v', 'm') AND relowner <> CAST(current_user AS regrole) "
            "UNION ALL SELECT proname FROM pg_proc p "
            "WHERE pronamespace = CAST(:s AS regnamespace) "
            "AND proowner <> CAST(current_user AS regrole) AND NOT EXISTS (SELECT FROM pg_depend "
            "d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
        ),
        {"s": schema},
    ).scalars()
    if names := sorted(set(foreign)):
        raise RuntimeError(
            f"objects of schema {schema!r} belong to another role ({', '.join(names[:5])} ...): "
            "migrate as the role that owns them, or have the administrator who made them run "
            "migrations/bootstrap_roles.sql, which hands them to the owner role"
        )
    # The schema's owner may take CREATE from everyone (PostgreSQL 14 and older grant it).
    owns = bind.execute(
        text(
            "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace "
            "WHERE nspname = :s"
        ),
        {"s": schema},
    ).scalar_one()
    if owns:
        op.execute(f"REVOKE CREATE ON SCHEMA {roles.quoted(schema)} FROM PUBLIC")
    can_create = bind.execute(
        text("SELECT has_schema_privilege(:r, :s, 'CREATE')"), {"r": role, "s": schema}
    ).scalar_one()
    if can_create:
        raise RuntimeError(
            f"the application role {role!r} may create objects in schema {schema!r}: its owner "
            f"runs REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC (and from {role})"
        )
