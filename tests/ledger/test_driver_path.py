"""loyalty.core.db's driver path: statements on asyncpg under a SQLAlchemy AsyncConnection belong to
the transaction SQLAlchemy owns (begun lazily, committed and rolled back by it)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from loyalty.core import db

_USER = db.Statement.of("SELECT user_id, balance FROM wallets WHERE user_id = :u")


async def _postings_keyed(engine: AsyncEngine, pattern: str) -> int:
    """Ledger rows whose idempotency key matches `pattern` (SQL LIKE), as committed."""
    async with engine.connect() as conn:
        count = await conn.execute(
            text("SELECT count(*) FROM wallet_transactions WHERE idempotency_key LIKE :k"),
            {"k": pattern},
        )
        return int(count.scalar_one())


def test_statement_numbers_each_name_once_and_leaves_casts_alone() -> None:
    statement = db.Statement.of(
        "SELECT :a, CAST(:b AS jsonb), :a, '2020-01-01'::date, x::text FROM t WHERE y = :c"
    )
    assert statement.sql == (
        "SELECT $1, CAST($2 AS jsonb), $1, '2020-01-01'::date, x::text FROM t WHERE y = $3"
    )
    assert statement.args({"c": 3, "b": 2, "a": 1}) == [1, 2, 3]


async def test_driver_first_begins_the_transaction_sqlalchemy_rolls_back(engine) -> None:
    user = f"driver-{uuid.uuid4().hex[:8]}"
    async with engine.connect() as conn:
        await ledger.earn(conn, user_id=user, points=5, idempotency_key=f"{user}:setup")
        await conn.commit()
        # The driver speaks first: it must begin the transaction, or the posting would
        # autocommit and survive the rollback.
        await ledger.earn(conn, user_id=user, points=7, idempotency_key=f"{user}:rolled-back")
        seen = await db.fetchrow(conn, _USER, {"u": user})
        assert seen is not None and seen["balance"] == 12  # visible inside the transaction
        await conn.rollback()
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
        assert wallet.balance == 5
    assert await _postings_keyed(engine, f"{user}:rolled-back") == 0


async def test_driver_after_sqlalchemy_shares_its_transaction(engine) -> None:
    user = f"driver-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)  # SQLAlchemy begins
        in_tx = (await conn.execute(text("SELECT txid_current()"))).scalar_one()
        row = await db.fetchrow(conn, db.Statement.of("SELECT txid_current() AS t"), {})
        assert row is not None and row["t"] == in_tx
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user)).balance == 0


async def test_failed_driver_statement_rolls_back_with_the_transaction(engine) -> None:
    user = f"driver-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Exception, match="division by zero"):
        async with engine.begin() as conn:
            await ledger.earn(conn, user_id=user, points=3, idempotency_key=f"{user}:a")
            await db.execute(conn, db.Statement.of("SELECT 1 / 0"), {})
    assert await _postings_keyed(engine, f"{user}:a") == 0
    # The pool's connection is usable afterwards.
    async with engine.begin() as conn:
        await ledger.earn(conn, user_id=user, points=3, idempotency_key=f"{user}:b")
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user)).balance == 3


async def test_driver_first_on_a_plain_connection_is_committed_by_its_commit(engine) -> None:
    user = f"driver-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)
    async with engine.connect() as conn:
        await ledger.earn(conn, user_id=user, points=4, idempotency_key=f"{user}:a")  # driver only
        assert conn.in_transaction()  # begun through SQLAlchemy, so its commit covers it
        await conn.commit()
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user)).balance == 4


async def _balance_and_keys(engine: AsyncEngine, user: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        wallet = await ledger.find_wallet(conn, user)
    return (wallet.balance if wallet else -1), await _postings_keyed(engine, f"{user}:%")


async def test_begin_commits_driver_only_work(engine) -> None:
    user = f"lean-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)
    async with db.begin(engine) as conn:
        await ledger.earn(conn, user_id=user, points=6, idempotency_key=f"{user}:a")
        assert not conn.in_transaction()  # only the driver's transaction: begin() ends it
    assert await _balance_and_keys(engine, user) == (6, 1)


async def test_begin_rolls_back_driver_only_work_on_an_exception(engine) -> None:
    user = f"lean-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)
    with pytest.raises(RuntimeError, match="after the posting"):
        async with db.begin(engine) as conn:
            await ledger.earn(conn, user_id=user, points=6, idempotency_key=f"{user}:a")
            raise RuntimeError("after the posting")
    assert await _balance_and_keys(engine, user) == (0, 0)


async def test_begin_commits_and_rolls_back_sqlalchemy_and_driver_work_together(engine) -> None:
    user = f"lean-{uuid.uuid4().hex[:8]}"
    # First earn opens the wallet through SQLAlchemy, the second posts on the driver.
    async with db.begin(engine) as conn:
        await ledger.earn(conn, user_id=user, points=2, idempotency_key=f"{user}:a")
        await ledger.earn(conn, user_id=user, points=3, idempotency_key=f"{user}:b")
        assert conn.in_transaction()
    assert await _balance_and_keys(engine, user) == (5, 2)
    with pytest.raises(RuntimeError):
        async with db.begin(engine) as conn:
            await ledger.earn(conn, user_id=user, points=7, idempotency_key=f"{user}:c")
            await conn.execute(text("SELECT 1"))  # SQLAlchemy joins the driver's transaction
            raise RuntimeError("roll back both")
    assert await _balance_and_keys(engine, user) == (5, 2)


async def test_begin_leaves_no_mark_and_no_transaction_on_the_pooled_connection(engine) -> None:
    user = f"lean-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)
    for _ in range(3):
        async with db.begin(engine) as conn:
            await ledger.earn(conn, user_id=user, points=1, idempotency_key=f"{user}:{_}")
    async with engine.connect() as conn:
        assert "loyalty.core.db.begin" not in conn.info
        assert (await conn.get_raw_connection()).dbapi_connection._transaction is None
        status = (await conn.execute(text("SELECT 1"))).scalar_one()
        assert status == 1
    assert await _balance_and_keys(engine, user) == (3, 3)


async def test_begin_discards_a_connection_whose_commit_failed(engine) -> None:
    user = f"lean-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await ledger.open_wallet(conn, user)
    # asyncpg reports the COMMIT on the terminated backend in its own words (a protocol error
    # or a closed connection, depending on when it reads the server's goodbye).
    with pytest.raises(
        (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    ):
        async with db.begin(engine) as conn:
            await ledger.earn(conn, user_id=user, points=9, idempotency_key=f"{user}:a")
            pid = await db.fetchrow(conn, db.Statement.of("SELECT pg_backend_pid() AS p"), {})
            assert pid is not None
            async with engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid["p"]})
    assert await _balance_and_keys(engine, user) == (0, 0)  # never committed
    async with db.begin(engine) as conn:  # the pool hands out a working connection
        await ledger.earn(conn, user_id=user, points=9, idempotency_key=f"{user}:b")
    assert await _balance_and_keys(engine, user) == (9, 1)
