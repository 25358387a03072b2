"""GET /wallets/{userId}: balances, tier and progress to the next tier (the view's and the rule
it computes progress with)."""

from __future__ import annotations

import pytest

from loyalty.tiers.rules import Ladder, TierStep, progress

# The ladder of the progress the view shows, given in an order other than its ranks.
LADDER = Ladder.of(
    [
        TierStep(code="gold", rank=3, threshold=20000, basis="lifetime"),
        TierStep(code="bronze", rank=1, threshold=0, basis="lifetime"),
        TierStep(code="silver", rank=2, threshold=5000, basis="lifetime"),
    ]
)


async def test_wallet_with_a_hold(api, auth, make_wallet):
    user = await make_wallet(1200, held=200)
    response = await api.http.get(f"/wallets/{user}", headers=auth.customer(user))
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


async def test_progress_past_threshold_and_top_tier(api, auth, make_wallet):
    silver = await make_wallet(21000, tier="silver")
    gold = await make_wallet(30000, tier="gold")
    waiting = (await api.http.get(f"/wallets/{silver}", headers=auth.admin())).json()
    assert waiting["next_tier"]["code"] == "gold"
    assert waiting["next_tier"]["points_to_go"] == 0  # earned, the tier job has not moved it yet
    top = (await api.http.get(f"/wallets/{gold}", headers=auth.service())).json()
    assert top["tier_details"]["earn_multiplier_pct"] == 150
    assert top["next_tier"] is None


async def test_unknown_wallet_is_404(api, auth, new_user_id):
    user = new_user_id()
    for path in (f"/wallets/{user}", f"/wallets/{user}/transactions"):
        response = await api.http.get(path, headers=auth.admin())
        assert response.status_code == 404
        assert response.json()["code"] == "wallet_not_found"


async def test_health_reports_the_database(api):
    response = await api.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "not_connected"}


def test_next_tier_follows_rank_not_list_order():
    assert [LADDER.above(code) for code in ("bronze", "silver", "gold", "platinum")] == [
        LADDER.get("silver"),
        LADDER.get("gold"),
        None,
        None,
    ]


@pytest.mark.parametrize(("lifetime", "to_go"), [(0, 5000), (4999, 1), (5000, 0), (9000, 0)])
def test_points_to_the_next_tier(lifetime, to_go):
    ahead = progress(LADDER, "bronze", lifetime=lifetime, trailing=0)
    assert ahead.next_tier == LADDER.get("silver")
    assert ahead.points_to_next == to_go
