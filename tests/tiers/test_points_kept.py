"""Tiers count the points kept, not the points touched: a refund takes back the tier credit its
earn gave (lifetime and trailing points alike), so book, earn, refund, repeat climbs nothing,
and a wallet a refund leaves short of its tier goes down only after the grace."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty import ledger
from loyalty.tiers.rules import Ladder
from tests.earning.helpers import accrual_result, paid, refund_result, refunded
from tests.harness.api import Api
from tests.harness.receiver import Receiver
from tests.tiers.helpers import Evaluate, tiers_of

GRACE_DAYS = 30


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"notify_url": receiver.url, "earn_pending_seconds": 0}


def _booking() -> str:
    return f"bk-{uuid.uuid4().hex[:12]}"


async def _earn(api: Api, client: Client, user: str, booking: str, amount: int) -> None:
    await paid(api, user, booking, amount)
    state = await accrual_result(client, booking)
    assert state.outcome is not None and state.outcome.status == "posted"


async def _refund(api: Api, client: Client, user: str, booking: str, amount: int) -> None:
    response = await refunded(api, user, booking, "r1", amount)
    assert response.status_code == 202, response.text
    await refund_result(client, booking, "r1")


async def _standing(api: Api, user: str) -> tuple[str, int, int]:
    """The wallet's tier, lifetime points and trailing-12-month points."""
    wallet = await api.wallet(user)
    status = wallet["tier_status"]
    return wallet["tier"], status["lifetime_points"], status["trailing_12m_points"]


async def _history(engine: AsyncEngine, user: str) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT h.from_tier, h.to_tier, h.reason FROM tier_history h "
                "JOIN wallets w ON w.wallet_id = h.wallet_id WHERE w.user_id = :u "
                "ORDER BY h.history_id"
            ),
            {"u": user},
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_book_earn_refund_repeat_climbs_no_tier(
    api: Api,
    worker: None,
    temporal_client: Client,
    engine: AsyncEngine,
    ladder: Ladder,
    new_user_id: Callable[[], str],
) -> None:
    """Silver needs 5,000 lifetime points: three bookings of 3,000 points, each refunded in full,
    used to reach it on the second earn."""
    user = new_user_id()
    for _ in range(3):
        booking = _booking()
        await _earn(api, temporal_client, user, booking, 3_000_000)
        assert await _standing(api, user) == ("bronze", 3_000, 3_000)
        await _refund(api, temporal_client, user, booking, 3_000_000)
        assert await _standing(api, user) == ("bronze", 0, 0)
    assert await _history(engine, user) == []


async def test_a_refund_below_silver_downgrades_only_after_the_grace(
    api: Api,
    worker: None,
    temporal_client: Client,
    engine: AsyncEngine,
    ladder: Ladder,
    evaluate: Evaluate,
    new_user_id: Callable[[], str],
) -> None:
    user = new_user_id()
    booking = _booking()
    await _earn(api, temporal_client, user, booking, 6_000_000)
    assert await _standing(api, user) == ("silver", 6_000, 6_000)  # upgraded on the earn
    assert await _history(engine, user) == [("bronze", "silver", "realtime")]

    # A third of the money back: 2,000 points and their tier credit go; a refund never
    # downgrades at once.
    await _refund(api, temporal_client, user, booking, 2_000_000)
    assert await _standing(api, user) == ("silver", 4_000, 4_000)
    wallet_id = (await api.wallet(user))["wallet_id"]
    wallet = uuid.UUID(wallet_id)

    t0 = datetime.now(UTC)
    await evaluate(as_of=t0, downgrade_grace_days=GRACE_DAYS)
    assert await tiers_of(engine, [wallet]) == {wallet: ("silver", t0)}
    grace = timedelta(days=GRACE_DAYS)
    await evaluate(as_of=t0 + grace - timedelta(seconds=1), downgrade_grace_days=GRACE_DAYS)
    assert await tiers_of(engine, [wallet]) == {wallet: ("silver", t0)}
    await evaluate(as_of=t0 + grace, downgrade_grace_days=GRACE_DAYS)
    assert await tiers_of(engine, [wallet]) == {wallet: ("bronze", None)}
    assert (await _history(engine, user))[-1] == ("silver", "bronze", "evaluation")


async def test_points_owed_after_a_refund_count_as_taken_back_at_the_evaluation(
    api: Api,
    worker: None,
    temporal_client: Client,
    engine: AsyncEngine,
    ladder: Ladder,
    evaluate: Evaluate,
    new_user_id: Callable[[], str],
) -> None:
    """A Silver customer spends the points, then the booking is refunded: nearly everything is
    owed, and the evaluation finds the wallet short (after the grace, Bronze)."""
    user = new_user_id()
    booking = _booking()
    await _earn(api, temporal_client, user, booking, 5_500_000)
    async with engine.begin() as conn:
        await ledger.burn(
            conn,
            user_id=user,
            points=5_000,
            idempotency_key=f"test-voucher:{user}",
            counter_account="voucher_sales",
        )
    await _refund(api, temporal_client, user, booking, 5_500_000)
    assert await _standing(api, user) == ("silver", 0, 0)  # 500 taken, 5,000 owed
    assert (await api.wallet(user))["debt_points"] == 5_000
    wallet = uuid.UUID((await api.wallet(user))["wallet_id"])

    t0 = datetime.now(UTC)
    await evaluate(as_of=t0, downgrade_grace_days=GRACE_DAYS)
    assert await tiers_of(engine, [wallet]) == {wallet: ("silver", t0)}
    await evaluate(as_of=t0 + timedelta(days=GRACE_DAYS), downgrade_grace_days=GRACE_DAYS)
    assert await tiers_of(engine, [wallet]) == {wallet: ("bronze", None)}
