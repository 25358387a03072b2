"""Alembic environment: async engine, URL from -x url=... or the MIGRATION_DATABASE_URL setting
(the owner role's login), else DATABASE_URL. The role the migrations grant to comes from
-x app_role=... or the DATABASE_APP_ROLE setting (migrations/roles.py)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from loyalty.core.db import make_engine
from loyalty.core.settings import get_settings
from loyalty.core.tables import AUTOGENERATE_OPTIONS, metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    settings = get_settings()
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or settings.migration_database_url
        or settings.database_url
    )
    if not url:
        raise SystemExit("MIGRATION_DATABASE_URL (or DATABASE_URL) is not set (or pass -x url=...)")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, **AUTOGENERATE_OPTIONS
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_url(), pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, **AUTOGENERATE_OPTIONS
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
