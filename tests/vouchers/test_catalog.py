"""The admin catalog API, uploaded code pools, sale windows and deactivation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.harness.api import Api
from tests.vouchers.conftest import MakeProduct, product_counts, wallet_of
from tests.vouchers.conftest import buy as buy_as

MakeWallet = Callable[..., Awaitable[str]]


async def buy(api: Api, user: str, product_id: str) -> httpx.Response:
    """The booking service buys on the customer's behalf."""
    return await buy_as(api, user, product_id, as_service=True)


async def test_only_admins_change_the_catalog(api: Api) -> None:
    body = {"name": "Coffee", "price_points": 100}
    for headers, status in ((api.customer("u-1"), 403), (api.service, 403), ({}, 401)):
        response = await api.http.post("/vouchers/products", json=body, headers=headers)
        assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "price_points": 0},
        {"name": "x", "price_points": 1.5},
        {"name": "x", "price_points": "100"},
        {"name": "x", "price_points": 100, "inventory": -1},
        {"name": "x", "price_points": 100, "surprise": True},
        {"name": "x", "price_points": 100, "code_source": "uploaded", "inventory": 5},
        {"name": "x", "price_points": 100, "min_tier": "platinum"},
        # PostgreSQL text cannot hold NUL: refused as input, not failed at the INSERT.
        {"name": "co\x00ffee", "price_points": 100},
        {"name": "x", "price_points": 100, "description": "\x00"},
        {"name": "x", "price_points": 100, "min_tier": "gold\x00"},
        {
            "name": "x",
            "price_points": 100,
            "sale_starts_at": "2030-01-02T00:00:00Z",
            "sale_ends_at": "2030-01-01T00:00:00Z",
        },
    ],
)
async def test_malformed_products_are_refused(api: Api, body: dict[str, Any]) -> None:
    response = await api.http.post("/vouchers/products", json=body, headers=api.admin)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.usefixtures("worker")
async def test_uploaded_codes_are_the_inventory(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    product = await make_product(price_points=100, code_source="uploaded")
    assert product["inventory"] == 0
    pid = product["product_id"]
    tag = uuid.uuid4().hex[:8].upper()
    codes = [f"UP-{tag}-{i}" for i in range(3)]

    first = await api.http.post(
        f"/vouchers/products/{pid}/codes", json={"codes": codes[:2]}, headers=api.admin
    )
    second = await api.http.post(
        f"/vouchers/products/{pid}/codes", json={"codes": codes[1:]}, headers=api.admin
    )

    assert first.status_code == 200, first.text
    assert (first.json()["added"], first.json()["duplicates"]) == (2, [])
    assert (second.json()["added"], second.json()["duplicates"]) == (1, [codes[1]])
    assert second.json()["product"]["inventory"] == 3

    buyers = [await make_wallet(500) for _ in range(4)]
    responses = [await buy(api, user, pid) for user in buyers]
    assert [r.status_code for r in responses] == [201, 201, 201, 409]
    assert sorted(r.json()["code"] for r in responses[:3]) == sorted(codes)
    assert responses[3].json()["code"] == "voucher_sold_out"
    assert (await product_counts(engine, pid)).vouchers == 3

    generated = await make_product(price_points=100)
    refused = await api.http.post(
        f"/vouchers/products/{generated['product_id']}/codes",
        json={"codes": ["ABCD-1234"]},
        headers=api.admin,
    )
    assert refused.status_code == 422


@pytest.mark.usefixtures("worker")
async def test_deactivated_or_out_of_window_products_are_not_sold(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    user = await make_wallet(1_000)
    product = await make_product(price_points=100)
    pid = product["product_id"]
    deactivated = await api.http.delete(f"/vouchers/products/{pid}", headers=api.admin)
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False

    inactive = await buy(api, user, pid)
    assert inactive.status_code == 422, inactive.text
    assert inactive.json()["code"] == "voucher_not_available"
    assert inactive.json()["details"]["reason"] == "inactive"

    # Customers see only active products; admins may ask for all.
    listed = await api.http.get("/vouchers/products", headers=api.customer(user))
    assert pid not in {p["product_id"] for p in listed.json()}
    everything = await api.http.get(
        "/vouchers/products", params={"include_inactive": "true"}, headers=api.admin
    )
    assert pid in {p["product_id"] for p in everything.json()}

    later = datetime.now(UTC) + timedelta(days=1)
    future = await make_product(price_points=100, sale_starts_at=later.isoformat())
    not_yet = await buy(api, user, future["product_id"])
    assert not_yet.status_code == 422
    assert not_yet.json()["details"]["reason"] == "not_started"
    assert (await wallet_of(engine, user)).balance == 1_000


@pytest.mark.usefixtures("worker")
async def test_patch_keeps_inventory_above_what_is_taken(
    api: Api, make_wallet: MakeWallet, make_product: MakeProduct
) -> None:
    product = await make_product(price_points=100, inventory=2)
    url = f"/vouchers/products/{product['product_id']}"
    user = await make_wallet(500)
    assert (await buy(api, user, product["product_id"])).status_code == 201

    below = await api.http.patch(url, json={"inventory": 0}, headers=api.admin)
    assert below.status_code == 422, below.text
    assert below.json()["details"] == {"inventory_taken": 1}

    changed = await api.http.patch(
        url, json={"price_points": 150, "inventory": None}, headers=api.admin
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["price_points"], changed.json()["inventory"]) == (150, None)
    assert (await api.http.patch(url, json={"name": None}, headers=api.admin)).status_code == 422
    missing = await api.http.patch(
        f"/vouchers/products/{uuid.uuid4()}", json={"active": False}, headers=api.admin
    )
    assert missing.status_code == 404
