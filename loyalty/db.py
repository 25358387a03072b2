"""Engine construction. Made once per process (API lifespan, worker, CLI) and disposed on exit.

Dead connections: instead of SQLAlchemy's `pool_pre_ping` (with asyncpg three round trips per
checkout: BEGIN, `;`, ROLLBACK), a checkout asks asyncpg whether the connection is closed, which
costs no round trip. When PostgreSQL restarts (or a backend is terminated) the server closes the
socket; asyncpg's protocol sees the end of the stream as soon as the event loop runs and marks
the connection closed, so the checkout discards it and the pool connects afresh (SQLAlchemy
retries a checkout that raises DisconnectionError). A connection that dies without the socket
closing is found by the first statement that fails on it: SQLAlchemy recognises the disconnect,
invalidates that connection and every connection pooled before it, and the transaction fails
like any other database error (callers retry: Temporal activities, HTTP clients).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Turn any PostgreSQL URL (libpq style, socket host in the query) into an asyncpg one."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _discard_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Pool checkout: refuse a connection asyncpg already knows is closed (no round trip)."""
    raw = getattr(dbapi_connection, "_connection", None)  # the adapted asyncpg Connection
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,  # see the module docstring: _discard_closed instead
    )
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine
