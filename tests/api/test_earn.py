"""POST /wallets/{userId}/earn: points from the tier's rule, idempotent by payment or booking."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.snapshots import snapshot


def _earn(user: str, **overrides: object) -> tuple[str, dict[str, object]]:
    body: dict[str, object] = {
        "booking_id": f"bk-{user}",
        "amount_paid": 149_999,
        "currency": "VND",
    }
    body.update(overrides)
    return f"/wallets/{user}/earn", body


async def _rows_for_key(engine, key: str) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        return [
            tuple(r)
            for r in await conn.execute(
                text("SELECT amount, type FROM wallet_transactions WHERE idempotency_key = :k"),
                {"k": key},
            )
        ]


async def test_first_earn_creates_the_wallet_and_records_the_rule(api, auth, engine, new_user_id):
    user = new_user_id()
    url, body = _earn(user, payment_id=f"pi-{user}")
    response = await api.http.post(url, headers=auth.service(), json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["points"] == 149
    assert data["posted"] is True
    assert data["replayed"] is False
    assert data["idempotency_key"] == f"earn:pi-{user}"
    assert data["rule"] == {
        "earn_rate_currency_per_point": 1000,
        "tier": "bronze",
        "earn_multiplier_pct": 100,
    }
    tx = data["transaction"]
    assert (tx["type"], tx["amount"], tx["currency_amount"], tx["currency"]) == (
        "earn",
        149,
        149_999,
        "VND",
    )
    assert (tx["booking_id"], tx["payment_id"]) == (f"bk-{user}", f"pi-{user}")
    assert tx["metadata"] == {
        "rule": "base",
        "earn_rate_currency_per_point": 1000,
        "tier": "bronze",
        "earn_multiplier_pct": 100,
        "amount_paid": 149_999,
        "rules": [{"rule": "base", "points": 149, "detail": "149999 paid at 1 point per 1000"}],
        "total": 149,
    }
    assert data["wallet"] == {
        "user_id": user,
        "balance": 149,
        "held": 0,
        "available": 149,
        "tier": "bronze",
        "lifetime_points": 149,
    }
    assert "Idempotent-Replayed" not in response.headers
    wallet = await api.http.get(f"/wallets/{user}", headers=auth.customer(user))
    assert wallet.json()["balance"] == 149


async def test_same_key_twice_posts_one_row(api, auth, engine, new_user_id):
    user = new_user_id()
    url, body = _earn(user)
    first = await api.http.post(url, headers=auth.service(), json=body)
    second = await api.http.post(url, headers=auth.service(), json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["replayed"] is True
    assert second.json()["transaction"] == first.json()["transaction"]
    assert second.json()["points"] == 149
    assert await _rows_for_key(engine, f"earn:bk-{user}") == [(149, "earn")]
    assert (await snapshot(engine, user)).wallet == (149, 0, 149, 1)


async def test_same_key_other_request_is_409_and_changes_nothing(api, auth, engine, new_user_id):
    user = new_user_id()
    url, body = _earn(user, payment_id=f"pi-{user}")
    assert (await api.http.post(url, headers=auth.service(), json=body)).status_code == 201
    before = await snapshot(engine, user)
    for change in ({"amount_paid": 200_000}, {"booking_id": "another-booking"}):
        response = await api.http.post(url, headers=auth.service(), json={**body, **change})
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "idempotency_conflict"
        assert response.json()["details"] == {"idempotency_key": f"earn:pi-{user}"}
    # The same payment credited to another user is a conflict too.
    other_url, _ = _earn(new_user_id())
    response = await api.http.post(other_url, headers=auth.service(), json=body)
    assert response.status_code == 409
    assert await snapshot(engine, user) == before


async def test_replay_after_a_tier_change_still_replays(api, auth, engine, make_wallet):
    user = await make_wallet(10)
    url, body = _earn(user, amount_paid=150_000)
    assert (await api.http.post(url, headers=auth.service(), json=body)).json()["points"] == 150
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE wallets SET tier = 'silver' WHERE user_id = :u"), {"u": user}
        )
    replay = await api.http.post(url, headers=auth.service(), json=body)
    assert replay.status_code == 200
    assert replay.json()["points"] == 150
    assert replay.json()["rule"]["tier"] == "bronze"
    assert replay.json()["wallet"]["tier"] == "silver"


async def test_tier_multiplier_applies_and_rounds_down(api, auth, make_wallet):
    user = await make_wallet(10, tier="silver")
    url, body = _earn(user, amount_paid=150_000)
    response = await api.http.post(url, headers=auth.service(), json=body)
    assert response.status_code == 201
    assert response.json()["points"] == 187  # 150,000 * 125 / 100,000 = 187.5
    assert response.json()["rule"]["earn_multiplier_pct"] == 125
    assert response.json()["wallet"]["balance"] == 197


async def test_payment_below_one_point_posts_nothing(api, auth, engine, new_user_id):
    user = new_user_id()
    url, body = _earn(user, amount_paid=999)
    before = await snapshot(engine)
    response = await api.http.post(url, headers=auth.service(), json=body)
    assert response.status_code == 200
    data = response.json()
    assert (data["points"], data["posted"], data["replayed"], data["transaction"]) == (
        0,
        False,
        False,
        None,
    )
    assert data["wallet"]["balance"] == 0
    after = await snapshot(engine, user)
    assert after.rows == before.rows
    assert after.wallets == before.wallets + 1  # the payer is a member now
    assert after.wallet == (0, 0, 0, 0)


async def test_other_currency_is_422_and_changes_nothing(api, auth, engine, new_user_id):
    user = new_user_id()
    url, body = _earn(user, currency="USD")
    before = await snapshot(engine)
    response = await api.http.post(url, headers=auth.service(), json=body)
    assert response.status_code == 422
    assert response.json() == {
        "code": "validation_error",
        "message": "amount_paid must be in VND",
        "details": {"currency": "USD", "expected": "VND"},
    }
    assert await snapshot(engine, user) == before
