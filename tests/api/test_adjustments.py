"""POST /wallets/{userId}/transactions: admin adjustments with a reason and an idempotency key."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from tests.api.snapshots import snapshot


async def test_credit_then_debit(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    url = f"/wallets/{user}/transactions"
    credit = await api.http.post(
        url, headers=auth.admin("adj-c-" + user), json={"points": 50, "reason": "goodwill"}
    )
    assert credit.status_code == 201, credit.text
    assert credit.json()["wallet"]["balance"] == 150
    tx = credit.json()["transaction"]
    assert (tx["type"], tx["amount"], tx["description"], tx["counter_account"]) == (
        "adjustment",
        50,
        "goodwill",
        "adjustment",
    )
    assert tx["metadata"] == {"actor": "admin-1"}
    debit = await api.http.post(
        url,
        headers=auth.admin("adj-d-" + user),
        json={"points": -150, "reason": "  fraud reversal "},
    )
    assert debit.status_code == 201
    assert debit.json()["transaction"]["description"] == "fraud reversal"
    assert debit.json()["wallet"] == {
        "user_id": user,
        "balance": 0,
        "held": 0,
        "available": 0,
        "tier": "bronze",
        "lifetime_points": 100,
    }


async def test_cannot_take_available_below_zero(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin("adj-neg-" + user),
        json={"points": -101, "reason": "too much"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "code": "insufficient_points",
        "message": "not enough points: 100 available, 101 needed",
        "details": {"available": 100, "requested": 101},
    }
    assert await snapshot(engine, user) == before
    # The key was not consumed: the same key with a valid request now posts.
    ok = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin("adj-neg-" + user),
        json={"points": -100, "reason": "too much"},
    )
    assert ok.status_code == 201


async def test_replay_and_conflict(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    url, key = f"/wallets/{user}/transactions", f"adj-replay-{user}"
    first = await api.http.post(url, headers=auth.admin(key), json={"points": 7, "reason": "r"})
    again = await api.http.post(url, headers=auth.admin(key), json={"points": 7, "reason": "r"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json()["transaction"] == first.json()["transaction"]
    assert again.json()["replayed"] is True
    conflict = await api.http.post(url, headers=auth.admin(key), json={"points": 8, "reason": "r"})
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM wallet_transactions WHERE idempotency_key = :k"),
                {"k": f"adjustment:{key}"},
            )
        ).scalar_one()
    assert count == 1
    assert (await snapshot(engine, user)).wallet == (107, 0, 100, 2)


async def test_unknown_wallet_is_404(api, auth, engine, new_user_id):
    before = await snapshot(engine)
    user = new_user_id()
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin("adj-404-" + user),
        json={"points": 5, "reason": "r"},
    )
    assert response.status_code == 404
    assert response.json() == {
        "code": "wallet_not_found",
        "message": f"no wallet for user {user!r}",
        "details": {"user_id": user},
    }
    assert await snapshot(engine) == before


async def test_a_credit_sets_its_own_validity_and_the_wallet_shows_the_next_expiry(
    api, auth, make_wallet
):
    user = await make_wallet(100)  # its lot lasts the default 24 months
    url = f"/wallets/{user}/transactions"
    never = await api.http.post(
        url,
        headers=auth.admin("adj-n-" + user),
        json={"points": 40, "reason": "lifetime gift", "validity_months": 0},
    )
    soon = await api.http.post(
        url,
        headers=auth.admin("adj-s-" + user),
        json={"points": 30, "reason": "one-month bonus", "validity_months": 1},
    )
    assert (never.status_code, soon.status_code) == (201, 201), soon.text
    wallet = (await api.http.get(f"/wallets/{user}", headers=auth.admin())).json()
    assert wallet["next_expiry"]["points"] == 30
    created = datetime.fromisoformat(soon.json()["transaction"]["created_at"])
    expires = datetime.fromisoformat(wallet["next_expiry"]["expires_at"])
    assert timedelta(days=28) <= expires - created <= timedelta(days=31)
    # A debit draws the one-month lot first: the next expiry is then the 100 of the default lot.
    debit = await api.http.post(
        url, headers=auth.admin("adj-d-" + user), json={"points": -30, "reason": "correction"}
    )
    assert debit.status_code == 201
    wallet = (await api.http.get(f"/wallets/{user}", headers=auth.admin())).json()
    assert wallet["next_expiry"]["points"] == 100
    assert datetime.fromisoformat(wallet["next_expiry"]["expires_at"]) - created > timedelta(
        days=700
    )


async def test_a_debit_with_a_validity_is_refused(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    answer = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin("adj-v-" + user),
        json={"points": -10, "reason": "x", "validity_months": 3},
    )
    assert answer.status_code == 422
    assert "validity_months applies to a credit only" in answer.text
    assert await snapshot(engine, user) == before
