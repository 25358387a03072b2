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
