"""GET /wallets/{userId} shows the tier's basis, progress to the next tier, the next
evaluation and a pending downgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.tiers.rules import Ladder
from tests.harness.api import Api
from tests.tiers.helpers import SeedWallet, seed


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "tier_evaluation_time": "02:00",
        "tier_evaluation_timezone": "Asia/Ho_Chi_Minh",
        "tier_downgrade_grace_days": 30,
    }


async def test_wallet_shows_basis_progress_next_evaluation_and_pending_downgrade(
    api: Api, owner_engine: AsyncEngine, ladder: Ladder
) -> None:
    now = datetime.now(UTC)
    since = now - timedelta(days=3)
    short_of_gold = SeedWallet(
        "gold",
        [(9000, now - timedelta(days=400)), (4000, now - timedelta(days=10))],
        pending_since=since,
    )
    await seed(owner_engine, [short_of_gold])

    status = (await api.wallet(short_of_gold.user_id))["tier_status"]

    assert status["tier"] == "gold" and status["basis"] == "trailing_12m"
    assert (status["lifetime_points"], status["trailing_12m_points"]) == (13000, 4000)
    assert (status["next_tier"], status["points_to_next_tier"]) == (None, 0)
    pending = status["pending_downgrade"]
    assert pending["to_tier"] == "bronze"
    assert datetime.fromisoformat(pending["since"]) == since
    assert datetime.fromisoformat(pending["effective_at"]) == since + timedelta(days=30)
    next_run = datetime.fromisoformat(status["next_evaluation_at"])
    assert now < next_run <= now + timedelta(days=1)
    assert next_run.astimezone(UTC).hour == 19  # 02:00 in Ho Chi Minh City


async def test_progress_counts_the_next_tiers_basis(
    api: Api, owner_engine: AsyncEngine, ladder: Ladder
) -> None:
    now = datetime.now(UTC)
    silver = SeedWallet("silver", [(30000, now - timedelta(days=500)), (1500, now)])
    await seed(owner_engine, [silver])

    status = (await api.wallet(silver.user_id))["tier_status"]
    assert (status["basis"], status["next_tier"], status["next_tier_basis"]) == (
        "lifetime",
        "gold",
        "trailing_12m",
    )
    assert status["points_to_next_tier"] == 20000 - 1500
    assert status["pending_downgrade"] is None
