"""Tier ladder and backoffice customer endpoints over HTTP, against real PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.harness.api import Api
from tests.tiers.helpers import SeedWallet, seed


@pytest.fixture
async def platinum_cleanup(owner_engine: AsyncEngine) -> AsyncIterator[None]:
    # The owner: the service never deletes a tier, so its role may not.
    async with owner_engine.connect() as conn:
        ranks = (await conn.execute(text("SELECT code, rank FROM loyalty_tiers"))).all()
    yield
    async with owner_engine.begin() as conn:
        await conn.execute(text("DELETE FROM loyalty_tiers WHERE code = 'platinum'"))
        for code, rank in ranks:
            await conn.execute(
                text("UPDATE loyalty_tiers SET rank = :r WHERE code = :c"), {"r": rank, "c": code}
            )


async def test_the_ladder_is_listed_for_any_signed_in_caller(api: Api) -> None:
    client, customer = api.http, api.customer("someone")
    assert (await client.get("/tiers")).status_code == 401
    response = await client.get("/tiers", headers=customer)
    assert response.status_code == 200
    body = response.json()
    assert [t["code"] for t in body["tiers"]] == ["bronze", "silver", "gold"]
    assert body["tiers"][0]["threshold"] == 0
    assert datetime.fromisoformat(body["next_evaluation_at"]) > datetime.now(UTC)


async def test_admins_create_update_and_order_tiers_and_bad_ladders_are_refused(
    api: Api, platinum_cleanup: None
) -> None:
    client, admin, customer = api.http, api.admin, api.customer("someone")
    platinum = {"code": "platinum", "name": "Platinum", "rank": 10, "threshold": 20000}
    assert (await client.post("/tiers", json=platinum, headers=customer)).status_code == 403

    overlapping = await client.post("/tiers", json=platinum, headers=admin)
    assert overlapping.status_code == 422
    assert overlapping.json()["code"] == "invalid_tier_ladder"
    assert "overlap" in overlapping.json()["message"]
    below = await client.post("/tiers", json={**platinum, "threshold": 100}, headers=admin)
    assert below.status_code == 422 and "out of order" in below.json()["message"]
    assert len((await client.get("/tiers", headers=admin)).json()["tiers"]) == 3  # unchanged

    created = await client.post(
        "/tiers",
        json={**platinum, "threshold": 100000, "basis": "trailing_12m", "benefits": {"lounge": 1}},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["benefits"] == {"lounge": 1}
    again = await client.post("/tiers", json={**platinum, "threshold": 100000}, headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "tier_exists"

    too_low = await client.patch("/tiers/platinum", json={"threshold": 19999}, headers=admin)
    assert too_low.status_code == 422 and too_low.json()["code"] == "invalid_tier_ladder"
    renamed = await client.patch(
        "/tiers/platinum",
        json={"name": "Platinum Elite", "earn_multiplier_pct": 200},
        headers=admin,
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["threshold"]) == ("Platinum Elite", 100000)
    unknown = await client.patch("/tiers/diamond", json={"name": "x"}, headers=admin)
    assert unknown.status_code == 404

    swapped = ["bronze", "silver", "platinum", "gold"]
    refused = await client.put("/tiers/order", json={"codes": swapped}, headers=admin)
    assert refused.status_code == 422 and "out of order" in refused.json()["message"]
    missing = await client.put("/tiers/order", json={"codes": ["bronze", "gold"]}, headers=admin)
    assert missing.status_code == 422
    ordered = await client.put(
        "/tiers/order", json={"codes": ["bronze", "silver", "gold", "platinum"]}, headers=admin
    )
    assert ordered.status_code == 200
    assert [(t["code"], t["rank"]) for t in ordered.json()] == [
        ("bronze", 1),
        ("silver", 2),
        ("gold", 3),
        ("platinum", 4),
    ]


async def test_customers_filters_pagination_and_csv(api: Api, owner_engine: AsyncEngine) -> None:
    client, admin, customer = api.http, api.admin, api.customer("someone")
    base = 7_700_000 + uuid.uuid4().int % 90_000 * 10  # balances no other test uses
    old = datetime(2001, 1, 1, tzinfo=UTC)
    prefix = f"cust-{uuid.uuid4().hex[:6]}"
    wallets = [
        SeedWallet(
            ["bronze", "silver", "gold"][i % 3],
            [(base + i, old + timedelta(days=i))],
            user_id=f"{prefix}-{i:02d}",
        )
        for i in range(10)
    ]
    wallets.append(SeedWallet("gold", [(base + 10, old + timedelta(days=10))], user_id="=SUM(1)"))
    await seed(owner_engine, wallets)
    in_range = {"min_balance": base, "max_balance": base + 10}

    assert (await client.get("/customers", headers=customer)).status_code == 403

    async def users(**params: Any) -> list[str]:
        response = await client.get("/customers", params={**in_range, **params}, headers=admin)
        assert response.status_code == 200, response.text
        return [c["user_id"] for c in response.json()["items"]]

    mine = sorted(w.user_id for w in wallets)
    assert await users() == mine
    assert await users(tier="gold") == ["=SUM(1)", f"{prefix}-02", f"{prefix}-05", f"{prefix}-08"]
    assert await users(tier=["bronze", "silver"], max_balance=base + 1) == [
        f"{prefix}-00",
        f"{prefix}-01",
    ]
    assert await users(min_lifetime=base + 9) == ["=SUM(1)", f"{prefix}-09"]
    assert await users(max_lifetime=base) == [f"{prefix}-00"]
    assert await users(inactive_since=(old + timedelta(days=2)).isoformat()) == [
        f"{prefix}-00",
        f"{prefix}-01",
    ]
    assert await users(active_since=(old + timedelta(days=9)).isoformat()) == [
        "=SUM(1)",
        f"{prefix}-09",
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {**in_range, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/customers", params=params, headers=admin)).json()
        seen += [c["user_id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (mine, 4)

    bad = await client.get("/customers", params={"cursor": "nonsense"}, headers=admin)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
    inverted = await client.get(
        "/customers", params={"min_balance": 10, "max_balance": 5}, headers=admin
    )
    assert inverted.status_code == 422

    as_json = (await client.get("/customers", params=in_range, headers=admin)).json()["items"]
    for request in (
        client.get("/customers", params=in_range, headers={**admin, "Accept": "text/csv"}),
        client.get("/customers", params={**in_range, "format": "csv"}, headers=admin),
    ):
        response = await request
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["user_id"] for r in rows] == ["'=SUM(1)", *mine[1:]]  # no formula injection
        assert [int(r["balance"]) for r in rows] == [c["balance"] for c in as_json]
        assert rows[1]["tier"] == as_json[1]["tier"]


@pytest.mark.parametrize(
    "change",
    [{"name": "Plat\x00inum"}, {"benefits": {"lounge": "a\x00b"}}, {"benefits": {"a\x00": 1}}],
)
async def test_text_postgresql_cannot_store_is_refused_and_nothing_is_written(
    api: Api, change: dict[str, Any]
) -> None:
    client, admin = api.http, api.admin
    body = {"code": "nul-test", "name": "Nul", "rank": 11, "threshold": 900000, **change}
    created = await client.post("/tiers", json=body, headers=admin)
    assert created.status_code == 422, created.text
    assert created.json()["code"] == "validation_error"
    patched = await client.patch("/tiers/gold", json=change, headers=admin)
    assert patched.status_code == 422, patched.text
    codes = [t["code"] for t in (await client.get("/tiers", headers=admin)).json()["tiers"]]
    assert "nul-test" not in codes
