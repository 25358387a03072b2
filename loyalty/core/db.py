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

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


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


# --- the hot path on the driver ------------------------------------------------------------------
#
# A statement through SQLAlchemy's AsyncConnection.execute costs about 100 us of Python (greenlet
# hop, execution context, result metadata for a textual statement) against about 20 us for the
# same prepared statement on asyncpg itself (bench/ledger.py's module phase: three round trips
# per posting, so most of its client CPU). The hottest statements (the ledger's one-statement
# posting, the earn endpoint's accrual path) therefore run on the asyncpg connection under the
# caller's AsyncConnection, inside the caller's transaction: SQLAlchemy's asyncpg adapter begins
# a transaction lazily, before its first statement, so `_driver` begins it the same way when the
# driver speaks first, under the adapter's own mutex. Commit, rollback and savepoints stay with
# whoever owns the transaction (SQLAlchemy, or `begin` below). Values come back as SQLAlchemy's
# textual statements return them (the adapter's jsonb codec decodes JSON). Errors are asyncpg's
# own exceptions; the pool still discards a connection that the server closed (_discard_closed),
# and nothing catches specific database errors on these paths. tests/ledger/test_driver_path.py
# pins the adapter's internals this relies on (SQLAlchemy 2.x asyncpg dialect).

_PARAM = re.compile(r"(?<![:\w]):(\w+)")

# Called with the SQL of every statement sent on the driver (bench/ledger.py counts them).
statement_observers: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class Statement:
    """SQL written with `:name` parameters, turned once into asyncpg's `$n` form."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Statement:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        return cls(_PARAM.sub(number, sql), tuple(names))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


# --- transactions -------------------------------------------------------------------------------
#
# `begin(engine)` is `engine.begin()` for the service's own transactions (API requests,
# activities) with about half the Python: SQLAlchemy's begin and commit cost two greenlet hops
# and its transaction bookkeeping, about 70 us a transaction (bench/ledger.py's module phase:
# 0.33 against 0.25 ms of client CPU per posting). It yields a connection with no SQLAlchemy
# transaction; a statement through SQLAlchemy begins one as usual (autobegin), a statement on the
# driver begins the driver's. At the end it commits (or, on an exception, rolls back) whichever
# was begun. The connection's info carries a mark while it runs, so the driver knows not to
# begin SQLAlchemy's transaction itself (see `_driver`).

_LEAN = "loyalty.core.db.begin"


@contextlib.asynccontextmanager
async def begin(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        info = conn.info
        info[_LEAN] = True
        try:
            yield conn
        except BaseException:
            await _end(conn, commit=False)
            raise
        else:
            await _end(conn, commit=True)
        finally:
            info.pop(_LEAN, None)


async def _end(conn: AsyncConnection, *, commit: bool) -> None:
    if conn.in_transaction():  # a statement went through SQLAlchemy: its transaction
        await (conn.commit() if commit else conn.rollback())
        return
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return
    adapted: Any = sync.connection.dbapi_connection  # AsyncAdapt_asyncpg_connection
    transaction = adapted._transaction if adapted is not None else None
    if transaction is None:  # nothing was sent
        return
    adapted._transaction = None  # done either way, as the adapter's own commit does
    try:
        await (transaction.commit() if commit else transaction.rollback())
    except BaseException:
        # The connection's state is unknown (a lost connection, a cancelled COMMIT): never pool it.
        await conn.invalidate()
        raise


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`, its transaction begun: by SQLAlchemy on a connection
    of `engine.connect()` / `engine.begin()` (so its commit and rollback cover the driver's
    statements), else by the driver (inside `begin`, which ends it)."""
    if not conn.in_transaction() and not conn.info.get(_LEAN):
        await conn.begin()
    sync = conn.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        fairy: Any = sync.connection  # connected: no I/O
    else:  # let SQLAlchemy (re)connect, or raise as it would
        fairy = await conn.get_raw_connection()
    adapted = fairy.dbapi_connection  # AsyncAdapt_asyncpg_connection
    if adapted._transaction is None:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
    return adapted.driver_connection


def _observe(statement: Statement) -> None:
    for observer in statement_observers:
        observer(statement.sql)


async def fetchrow(
    conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]
) -> dict[str, Any] | None:
    if statement_observers:
        _observe(statement)
    row = await (await _driver(conn)).fetchrow(statement.sql, *statement.args(params))
    return dict(row) if row is not None else None


async def fetch(
    conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    if statement_observers:
        _observe(statement)
    rows = await (await _driver(conn)).fetch(statement.sql, *statement.args(params))
    return [dict(row) for row in rows]


async def execute(conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]) -> None:
    if statement_observers:
        _observe(statement)
    await (await _driver(conn)).execute(statement.sql, *statement.args(params))
