"""GET /wallets/{userId} shows the tier's basis, progress to the next tier, the next
evaluation and a pending downgrade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.auth import SCOPE_CUSTOMER
from api.tokens import mint_token
from loyalty.core.settings import Settings
from loyalty.tiers.rules import Ladder
from tests.api.conftest import serve
from tests.tiers.conftest import SeedWallet, seed


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        tier_evaluation_time="02:00",
        tier_evaluation_timezone="Asia/Ho_Chi_Minh",
        tier_downgrade_grace_days=30,
    )


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings)) as c:
        yield c


async def test_wallet_shows_basis_progress_next_evaluation_and_pending_downgrade(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, ladder: Ladder
) -> None:
    now = datetime.now(UTC)
    since = now - timedelta(days=3)
    short_of_gold = SeedWallet(
        "gold",
        [(9000, now - timedelta(days=400)), (4000, now - timedelta(days=10))],
        pending_since=since,
    )
    await seed(engine, [short_of_gold])
    token = mint_token(settings, sub=short_of_gold.user_id, scopes=[SCOPE_CUSTOMER], ttl=600)

    response = await client.get(
        f"/wallets/{short_of_gold.user_id}", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200, response.text
    status = response.json()["tier_status"]
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
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, ladder: Ladder
) -> None:
    now = datetime.now(UTC)
    silver = SeedWallet("silver", [(30000, now - timedelta(days=500)), (1500, now)])
    await seed(engine, [silver])
    token = mint_token(settings, sub=silver.user_id, scopes=[SCOPE_CUSTOMER], ttl=600)
    body = (
        await client.get(f"/wallets/{silver.user_id}", headers={"Authorization": f"Bearer {token}"})
    ).json()
    status = body["tier_status"]
    assert (status["basis"], status["next_tier"], status["next_tier_basis"]) == (
        "lifetime",
        "gold",
        "trailing_12m",
    )
    assert status["points_to_next_tier"] == 20000 - 1500
    assert status["pending_downgrade"] is None
