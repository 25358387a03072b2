"""The database engine, made once per process (API lifespan, worker, CLI) and disposed on exit,
and the two ways the service talks to PostgreSQL through it.

- `transaction(engine)`: a connection inside a transaction, committed when the block ends and
  rolled back when it raises. For work of several statements (a checkout's hold with its cap
  check, an accrual with its bookkeeping). Domain functions take the connection and never
  commit: the edge (request, activity) owns the transaction.
- `autocommit(engine)`: a connection whose statements each commit on their own. A ledger
  posting is one call of a PostgreSQL function (loyalty.ledger), atomic by itself, so on its
  own it needs no BEGIN and COMMIT: one round trip instead of three.

Dead connections: instead of SQLAlchemy's `pool_pre_ping` (with asyncpg three round trips per
checkout: BEGIN, `;`, ROLLBACK), a checkout asks the driver whether the connection is closed,
which costs no round trip. When PostgreSQL restarts (or a backend is terminated) the server
closes the socket; asyncpg sees the end of the stream as soon as the event loop runs and marks
the connection closed, so the checkout discards it and the pool connects afresh (SQLAlchemy
retries a checkout that raises DisconnectionError). A connection that dies without the socket
closing is found by the first statement that fails on it: SQLAlchemy recognises the
disconnect, invalidates the pool's connections, and the transaction fails like any other
database error (callers retry: Temporal activities, HTTP clients).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import AdaptedConnection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Turn any PostgreSQL URL (libpq style, socket host in the query) into an asyncpg one."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _discard_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Pool checkout: refuse a connection the driver already knows is closed (no round trip)."""
    if isinstance(dbapi_connection, AdaptedConnection):
        driver = dbapi_connection.driver_connection  # the asyncpg Connection
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the database closed this pooled connection")


# The ledger's policy each connection carries to the posting functions (migration 0012 reads it
# with current_setting): how many months a lot of points lasts when the posting names none.
POINTS_VALIDITY_SETTING = "loyalty.points_validity_months"


def make_engine(
    url: str, *, pool_size: int = 10, points_validity_months: int | None = None
) -> AsyncEngine:
    """`points_validity_months`: the POINTS_VALIDITY_MONTHS setting (0: points never expire);
    None leaves the functions' own default, 24."""
    server_settings = (
        {}
        if points_validity_months is None
        else {POINTS_VALIDITY_SETTING: str(int(points_validity_months))}
    )
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,  # see the module docstring: _discard_closed instead
        connect_args={"server_settings": server_settings} if server_settings else {},
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction: committed at the end, rolled back on an exception."""
    async with engine.begin() as conn:
        yield conn


@contextlib.asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement commits on its own (no BEGIN, no COMMIT)."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")
