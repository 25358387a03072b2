"""The migration chain: one head, and every migration downgrades and upgrades again cleanly."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

import devstack
from devstack import alembic_config as _config


def test_one_linear_chain() -> None:
    script = ScriptDirectory.from_config(_config("postgresql://unused"))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert all(len(r._all_down_revisions) <= 1 for r in revisions)


def test_downgrade_to_base_and_upgrade_again(embedded_postgres: devstack.EmbeddedPostgres) -> None:
    database = embedded_postgres.service_database("loyalty_migrations", migrate=False)
    cfg = _config(database.owner_url, app_role=database.app_role)  # as the owner role
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    out = embedded_postgres._server.psql(
        "\\c loyalty_migrations\nSELECT version_num FROM alembic_version;"
    )
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None and head in out


# Wallets posted under the old clawback (lifetime points untouched), through the posting
# functions as they were at 0011: a full refund; a refund that left a debt, repaid by a later
# earn; an earn never refunded. Lifetime points then counted every point earned.
_BEFORE_0015 = """
SELECT ledger_earn('refunded', 700, 'e1', 'h');
SELECT ledger_clawback('refunded', 700, 'c1', 'h', p_counter_account => 'issuance:refund-clawback');
SELECT ledger_earn('in-debt', 500, 'e2', 'h');
SELECT ledger_burn('in-debt', 450, 'b2', 'h', 'voucher_sales');
SELECT ledger_clawback('in-debt', 50, 'c2', 'h', p_counter_account => 'issuance:refund-clawback');
INSERT INTO points_debt_entries (user_id, points, idempotency_key) VALUES ('in-debt', 450, 'd2');
SELECT ledger_earn('in-debt', 600, 'e3', 'h');
SELECT ledger_clawback('in-debt', 450, 'c3', 'h', p_counter_account => 'issuance:debt-repayment');
INSERT INTO points_debt_entries (user_id, points, idempotency_key) VALUES ('in-debt', -450, 'r3');
SELECT ledger_earn('kept', 300, 'e4', 'h');
"""


def test_0015_recomputes_lifetime_points_as_the_points_kept(
    embedded_postgres: devstack.EmbeddedPostgres,
) -> None:
    database = embedded_postgres.service_database("loyalty_points_kept", migrate=False)
    cfg = _config(database.owner_url, app_role=database.app_role)

    def psql(sql: str) -> str:
        return embedded_postgres._server.psql(
            f"\\set ON_ERROR_STOP on\n\\c loyalty_points_kept\n\\t on\n\\a\n{sql}"
        )

    def lifetimes() -> dict[str, int]:
        out = psql("SELECT user_id || '=' || lifetime_points FROM wallets;")
        pairs = (line.split("=") for line in out.splitlines() if "=" in line)
        return {user: int(points) for user, points in pairs}

    command.upgrade(cfg, "0011")
    psql(_BEFORE_0015)
    assert lifetimes() == {"refunded": 700, "in-debt": 1_100, "kept": 300}
    command.upgrade(cfg, "0015")
    # earned, less clawed back, less owed (the repayment and its debt entry cancel)
    assert lifetimes() == {"refunded": 0, "in-debt": 600, "kept": 300}
    command.downgrade(cfg, "0011")
    assert lifetimes() == {"refunded": 700, "in-debt": 1_100, "kept": 300}
    command.upgrade(cfg, "head")
    assert lifetimes() == {"refunded": 0, "in-debt": 600, "kept": 300}
