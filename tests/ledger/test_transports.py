"""A posting is the same call whichever way it travels: inside a transaction (through
SQLAlchemy) or on its own in autocommit (on the driver connection). Both post, replay and refuse
alike, and an autocommit posting is one statement that commits by itself."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import ledger
from loyalty.core import db
from loyalty.core.errors import IdempotencyConflict, InsufficientPoints, WalletNotFound

Transport = Callable[[AsyncEngine], AbstractAsyncContextManager[AsyncConnection]]
TRANSPORTS = {"transaction": db.transaction, "autocommit": db.autocommit}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Transport:
    return TRANSPORTS[request.param]


async def test_earn_posts_then_replays_then_refuses_another_request(engine, user_id, transport):
    key = f"earn:{user_id}"
    async with transport(engine) as conn:
        first = await ledger.earn(conn, user_id=user_id, points=120, idempotency_key=key)
    async with transport(engine) as conn:
        again = await ledger.earn(conn, user_id=user_id, points=120, idempotency_key=key)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.posting == first.posting and again.wallet.balance == 120
    assert first.posting.metadata == {}
    with pytest.raises(IdempotencyConflict):
        async with transport(engine) as conn:
            await ledger.earn(conn, user_id=user_id, points=121, idempotency_key=key)


async def test_refusals_carry_their_details(engine, make_wallet, transport):
    user = await make_wallet(50)
    with pytest.raises(InsufficientPoints) as refused:
        async with transport(engine) as conn:
            await ledger.burn(
                conn, user_id=user, points=80, idempotency_key=f"b:{user}", counter_account="t"
            )
    assert refused.value.details == {"available": 50, "requested": 80}
    with pytest.raises(WalletNotFound):
        async with transport(engine) as conn:
            await ledger.adjust(
                conn, user_id=f"nobody-{uuid.uuid4()}", points=5, reason="x", idempotency_key="k"
            )


async def test_hold_and_capture(engine, make_wallet, transport):
    user = await make_wallet(500)
    async with transport(engine) as conn:
        held, _ = await ledger.hold(
            conn,
            user_id=user,
            points=200,
            idempotency_key=f"h:{user}",
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
            metadata={"booking": "b1"},
        )
    async with transport(engine) as conn:
        captured = await ledger.capture(conn, hold_id=held.hold_id, idempotency_key=f"c:{user}")
    assert (held.status, held.amount) == ("open", 200)
    assert (captured.wallet.balance, captured.wallet.held, captured.posting.amount) == (
        300,
        0,
        -200,
    )


@contextlib.asynccontextmanager
async def counted(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """The statements SQLAlchemy sends meanwhile (BEGIN and COMMIT travel as DBAPI calls)."""
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def begun(conn) -> None:  # type: ignore[no-untyped-def]
        statements.append("BEGIN")

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    event.listen(engine.sync_engine, "begin", begun)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
        event.remove(engine.sync_engine, "begin", begun)


async def test_an_autocommit_posting_is_one_statement_that_commits_alone(engine, user_id):
    async with db.autocommit(engine) as conn:
        async with counted(engine) as through_sqlalchemy:
            await ledger.earn(conn, user_id=user_id, points=7, idempotency_key=f"one:{user_id}")
        # Visible to others at once: it committed without a COMMIT of ours.
        async with engine.connect() as other:
            balance = (
                await other.execute(
                    text("SELECT balance FROM wallets WHERE user_id = :u"), {"u": user_id}
                )
            ).scalar_one()
    assert balance == 7
    assert through_sqlalchemy == []  # sent on the driver, not through SQLAlchemy
