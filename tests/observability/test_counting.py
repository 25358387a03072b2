"""A business counter counts a ledger row once it is committed for good: not while its
transaction is open, never when it rolls back, never for an idempotent replay."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from loyalty.core import db


def _earns() -> float:
    return REGISTRY.get_sample_value("loyalty_ledger_postings_total", {"type": "earn"}) or 0.0


def _points() -> float:
    labels = {"type": "earn", "direction": "credit"}
    return REGISTRY.get_sample_value("loyalty_ledger_points_total", labels) or 0.0


async def test_postings_count_on_commit_once(engine: AsyncEngine, new_user_id) -> None:
    user, key = new_user_id(), f"count-{uuid.uuid4().hex}"
    earns, points = _earns(), _points()

    with pytest.raises(RuntimeError):
        async with db.transaction(engine) as conn:
            await ledger.earn(conn, user_id=user, points=7, idempotency_key=key)
            raise RuntimeError("the caller's transaction fails after the posting")
    assert (_earns(), _points()) == (earns, points)

    async with db.transaction(engine) as conn:
        await ledger.earn(conn, user_id=user, points=7, idempotency_key=key)
        assert _earns() == earns  # not committed yet
    assert (_earns(), _points()) == (earns + 1, points + 7)

    async with db.autocommit(engine) as conn:  # the same posting again: a replay
        replay = await ledger.earn(conn, user_id=user, points=7, idempotency_key=key)
    assert replay.replayed
    assert (_earns(), _points()) == (earns + 1, points + 7)

    async with db.autocommit(engine) as conn:  # a new one in autocommit: counted at once
        await ledger.earn(conn, user_id=user, points=3, idempotency_key=f"{key}-2")
        assert (_earns(), _points()) == (earns + 2, points + 10)
