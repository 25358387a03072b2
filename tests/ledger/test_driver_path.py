"""loyalty.db's driver path: statements on asyncpg under a SQLAlchemy AsyncConnection belong to
the transaction SQLAlchemy owns (begun lazily, committed and rolled back by it)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from loyalty import db, ledger

_USER = db.Statement.of("SELECT user_id, balance FROM wallets WHERE user_id = :u")


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
        key = (
            await conn.execute(
                text("SELECT count(*) FROM wallet_transactions WHERE idempotency_key = :k"),
                {"k": f"{user}:rolled-back"},
            )
        ).scalar_one()
        assert key == 0


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
    async with engine.connect() as conn:
        total = (
            await conn.execute(
                text("SELECT count(*) FROM wallet_transactions WHERE idempotency_key = :k"),
                {"k": f"{user}:a"},
            )
        ).scalar_one()
        assert total == 0
    # The pool's connection is usable afterwards.
    async with engine.begin() as conn:
        await ledger.earn(conn, user_id=user, points=3, idempotency_key=f"{user}:b")
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user)).balance == 3
