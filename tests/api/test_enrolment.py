"""PUT /wallets/{userId}: a customer is enrolled before their first earn (service or admin), at
the lowest tier; enrolling again answers the wallet as it is. An admin's goodwill credit to a
new customer then works."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.harness.api import Api

MakeWallet = Callable[..., Awaitable[str]]


async def _wallets_of(engine: AsyncEngine, user: str) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM wallets WHERE user_id = :u")
        return int((await conn.execute(query, {"u": user})).scalar_one())


async def test_enrol_then_goodwill_credit(api: Api, engine: AsyncEngine, new_user_id) -> None:
    user = new_user_id()
    credit = {"points": 500, "reason": "goodwill: welcome"}
    before = await api.http.post(
        f"/wallets/{user}/transactions", json=credit, headers=api.auth.admin("welcome-1")
    )
    assert (before.status_code, before.json()["code"]) == (404, "wallet_not_found")

    enrolled = await api.http.put(f"/wallets/{user}", headers=api.service)

    assert enrolled.status_code == 201, enrolled.text
    wallet = enrolled.json()
    assert (wallet["user_id"], wallet["balance"], wallet["held"], wallet["available"]) == (
        user,
        0,
        0,
        0,
    )
    assert (wallet["tier"], wallet["tier_details"]["rank"]) == ("bronze", 1)  # the lowest
    assert wallet["next_tier"]["code"] == "silver"

    credited = await api.http.post(
        f"/wallets/{user}/transactions", json=credit, headers=api.auth.admin("welcome-2")
    )
    assert credited.status_code == 201, credited.text
    assert credited.json()["wallet"]["balance"] == 500
    assert (await api.wallet(user))["wallet_id"] == wallet["wallet_id"]


async def test_enrolling_again_answers_the_wallet_as_it_is(
    api: Api, engine: AsyncEngine, make_wallet: MakeWallet, new_user_id
) -> None:
    earned = await make_wallet(6_000, tier="silver")  # opened by its first earn
    again = await api.http.put(f"/wallets/{earned}", headers=api.admin)
    assert again.status_code == 200, again.text
    assert (again.json()["balance"], again.json()["tier"]) == (6_000, "silver")

    user = new_user_id()
    first = await api.http.put(f"/wallets/{user}", headers=api.admin)
    second = await api.http.put(f"/wallets/{user}", headers=api.service)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["wallet_id"] == first.json()["wallet_id"]
    assert await _wallets_of(engine, user) == 1


async def test_concurrent_enrolments_open_one_wallet_and_one_says_so(
    api: Api, engine: AsyncEngine, new_user_id
) -> None:
    user = new_user_id()

    answers = await asyncio.gather(
        *(api.http.put(f"/wallets/{user}", headers=api.service) for _ in range(6))
    )

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 200, 201]
    assert len({a.json()["wallet_id"] for a in answers}) == 1
    assert await _wallets_of(engine, user) == 1


async def test_who_may_enrol(api: Api, engine: AsyncEngine, new_user_id) -> None:
    user = new_user_id()
    own = await api.http.put(f"/wallets/{user}", headers=api.customer(user))
    assert (own.status_code, own.json()["code"]) == (403, "forbidden")
    assert (await api.http.put(f"/wallets/{user}")).status_code == 401
    assert await _wallets_of(engine, user) == 0
    spaced = await api.http.put("/wallets/has%20space", headers=api.service)
    assert (spaced.status_code, spaced.json()["code"]) == (422, "validation_error")
