"""GET /wallets/{userId}: balances, tier and progress to the next tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from loyalty import ledger


async def test_wallet_with_a_hold(api_client, auth, engine, make_wallet):
    user = await make_wallet(1200)
    async with engine.begin() as conn:
        await ledger.hold(
            conn,
            user_id=user,
            points=200,
            idempotency_key=f"hold:{user}",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
        )
    response = await api_client.get(f"/wallets/{user}", headers=auth.customer(user))
    assert response.status_code == 200
    data = response.json()
    assert (data["balance"], data["held"], data["available"], data["lifetime_points"]) == (
        1200,
        200,
        1000,
        1200,
    )
    assert data["tier"] == "bronze"
    assert data["tier_details"] == {
        "code": "bronze",
        "name": "Bronze",
        "rank": 1,
        "earn_multiplier_pct": 100,
    }
    assert data["next_tier"] == {
        "code": "silver",
        "name": "Silver",
        "threshold": 5000,
        "basis": "lifetime",
        "basis_points": 1200,
        "points_to_go": 3800,
    }


async def test_progress_past_threshold_and_top_tier(api_client, auth, engine, make_wallet):
    silver = await make_wallet(21000)
    gold = await make_wallet(30000)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE wallets SET tier = 'silver' WHERE user_id = :u"), {"u": silver}
        )
        await conn.execute(text("UPDATE wallets SET tier = 'gold' WHERE user_id = :u"), {"u": gold})
    waiting = (await api_client.get(f"/wallets/{silver}", headers=auth.admin())).json()
    assert waiting["next_tier"]["code"] == "gold"
    assert waiting["next_tier"]["points_to_go"] == 0  # earned, the tier job has not moved it yet
    top = (await api_client.get(f"/wallets/{gold}", headers=auth.service())).json()
    assert top["tier_details"]["earn_multiplier_pct"] == 150
    assert top["next_tier"] is None


async def test_unknown_wallet_is_404(api_client, auth, new_user_id):
    user = new_user_id()
    for path in (f"/wallets/{user}", f"/wallets/{user}/transactions"):
        response = await api_client.get(path, headers=auth.admin())
        assert response.status_code == 404
        assert response.json()["code"] == "wallet_not_found"


async def test_health_reports_the_database(api_client):
    response = await api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "not_connected"}
