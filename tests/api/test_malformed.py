"""Malformed requests are 422 with the field errors and leave the database exactly as it was;
the bounds the inputs check are the ledger's own."""

from __future__ import annotations

import pytest

from loyalty import ledger
from loyalty.wallets import schemas
from tests.api.snapshots import snapshot

GOOD_EARN = {"booking_id": "bk-malformed", "amount_paid": 150_000, "currency": "VND"}
GOOD_ADJUST = {"points": 5, "reason": "goodwill"}

BAD_EARN = [
    ({"amount_paid": -1}, "amount_paid"),
    ({"amount_paid": 1500.5}, "amount_paid"),
    ({"amount_paid": 150000.0}, "amount_paid"),
    ({"amount_paid": "150000"}, "amount_paid"),
    ({"amount_paid": True}, "amount_paid"),
    ({"amount_paid": None}, "amount_paid"),
    ({"amount_paid": 10**16}, "amount_paid"),
    ({"amount_paid": 10**40}, "amount_paid"),
    ({"booking_id": ""}, "booking_id"),
    ({"booking_id": "b" * 129}, "booking_id"),
    ({"booking_id": 12345}, "booking_id"),
    ({"booking_id": "has space"}, "booking_id"),
    ({"payment_id": ""}, "payment_id"),
    ({"currency": "vnd"}, "currency"),
    ({"currency": "VNDX"}, "currency"),
    ({"points": 1000}, "points"),
    ({"user_id": "someone"}, "user_id"),
]

BAD_ADJUST = [
    ({"points": 0}, "points"),
    ({"points": 1.5}, "points"),
    ({"points": 5.0}, "points"),
    ({"points": "5"}, "points"),
    ({"points": True}, "points"),
    ({"points": 10**13}, "points"),
    ({"points": -(10**13)}, "points"),
    ({"points": 10**40}, "points"),
    ({"reason": ""}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"reason": "r" * 501}, "reason"),
    ({"reason": "good\x00will"}, "reason"),  # PostgreSQL text cannot hold NUL
    ({"reason": None}, "reason"),
    ({"reason": 7}, "reason"),
    ({"actor": "admin-2"}, "actor"),
]


@pytest.mark.parametrize(("change", "field"), BAD_EARN)
async def test_bad_earn_bodies(api, auth, engine, make_wallet, change, field):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    response = await api.http.post(
        f"/wallets/{user}/earn", headers=auth.service(), json={**GOOD_EARN, **change}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert ["body", field] in [e["loc"][:2] for e in body["details"]["errors"]]
    assert await snapshot(engine, user) == before


@pytest.mark.parametrize(("change", "field"), BAD_ADJUST)
async def test_bad_adjustment_bodies(api, auth, engine, make_wallet, change, field):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin(f"bad-{user}"),
        json={**GOOD_ADJUST, **change},
    )
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"][:2] for e in response.json()["details"]["errors"]]
    assert await snapshot(engine, user) == before


@pytest.mark.parametrize(
    ("name", "path", "kwargs", "loc"),
    [
        ("missing fields", "earn", {"json": {}}, ["body", "booking_id"]),
        (
            "not json",
            "earn",
            {"content": b"{booking_id:", "headers": {"Content-Type": "application/json"}},
            ["body"],
        ),
        ("a list", "earn", {"json": [GOOD_EARN]}, ["body"]),
        (
            "no key",
            "transactions",
            {"json": GOOD_ADJUST, "key": None},
            ["header", "Idempotency-Key"],
        ),
        (
            "long key",
            "transactions",
            {"json": GOOD_ADJUST, "key": "k" * 201},
            ["header", "Idempotency-Key"],
        ),
        (
            "blank key",
            "transactions",
            {"json": GOOD_ADJUST, "key": "with space"},
            ["header", "Idempotency-Key"],
        ),
    ],
)
async def test_malformed_requests(api, auth, engine, make_wallet, name, path, kwargs, loc):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    kwargs = dict(kwargs)  # the parameters are shared between runs; do not consume them
    key = kwargs.pop("key", f"k-{user}")
    headers = {
        **(auth.service() if path == "earn" else auth.admin(key)),
        **kwargs.pop("headers", {}),
    }
    response = await api.http.post(f"/wallets/{user}/{path}", headers=headers, **kwargs)
    assert response.status_code == 422, (name, response.text)
    assert loc in [e["loc"][: len(loc)] for e in response.json()["details"]["errors"]], name
    assert await snapshot(engine, user) == before


async def test_rejected_business_rules_change_nothing(api, auth, engine, make_wallet):
    user = await make_wallet(100)
    before = await snapshot(engine, user)
    too_much = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.admin(f"tm-{user}"),
        json={"points": -101, "reason": "r"},
    )
    other_currency = await api.http.post(
        f"/wallets/{user}/earn", headers=auth.service(), json={**GOOD_EARN, "currency": "USD"}
    )
    long_user = await api.http.get("/wallets/" + "u" * 129, headers=auth.admin())
    assert [r.status_code for r in (too_much, other_currency, long_user)] == [422, 422, 422]
    assert [r.json()["code"] for r in (too_much, other_currency, long_user)] == [
        "insufficient_points",
        "validation_error",
        "validation_error",
    ]
    assert await snapshot(engine, user) == before


def test_schema_bounds_match_the_ledger():
    assert schemas.MAX_POINTS == ledger.MAX_POINTS
    assert set(schemas.TxType.__args__) == set(ledger.TX_TYPES)
