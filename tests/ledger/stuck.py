"""Stuck money for the invariant tests: a hold whose expiry is long past, that no saga owns.

The test database is shared by the whole session and the ledger is append-only, so the hold is
released on the way out: the invariant checks of later tests see no stuck money of ours."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from loyalty.core import db


@contextlib.asynccontextmanager
async def stuck_hold(
    engine: AsyncEngine, user_id: str, *, expired_ago: timedelta, points: int = 100
) -> AsyncIterator[ledger.HoldState]:
    """A hold of `points` of the wallet that expired `expired_ago` ago, open until the block ends
    (unless the test resolves it)."""
    key = f"test-stuck:{uuid.uuid4()}"
    async with db.transaction(engine) as conn:
        held, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=points,
            idempotency_key=key,
            expires_at=datetime.now(UTC) - expired_ago,
            booking_id=f"stuck-{uuid.uuid4().hex[:8]}",
            description="a hold nobody resolves",
        )
    try:
        yield held
    finally:
        async with db.transaction(engine) as conn:
            if (
                await ledger.get_hold(conn, held.hold_id)
            ).status == "open":  # the test may resolve it
                await ledger.release(conn, hold_id=held.hold_id, idempotency_key=f"{key}:release")
