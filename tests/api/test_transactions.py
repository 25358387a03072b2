"""GET /wallets/{userId}/transactions: keyset pagination under concurrent inserts, filters."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from loyalty import ledger


async def _earn_rows(
    engine, user: str, count: int, *, prefix: str = "seed", booking=None
) -> list[int]:
    ids = []
    for i in range(count):
        async with engine.begin() as conn:
            result = await ledger.earn(
                conn,
                user_id=user,
                points=1 + i % 5,
                idempotency_key=f"{prefix}:{user}:{i}",
                booking_id=booking(i) if booking else None,
            )
        ids.append(result.posting.tx_id)
    return ids


async def _all_pages(client, url: str, headers, params=None) -> tuple[list[int], int]:
    seen: list[int] = []
    cursor, pages = None, 0
    while True:
        query = {**(params or {}), **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, headers=headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["tx_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_pages_cover_every_row_once(api, auth, engine, make_wallet):
    user = await make_wallet(10)
    ids = await _earn_rows(engine, user, 20)
    seen, pages = await _all_pages(
        api.http, f"/wallets/{user}/transactions", auth.customer(user), {"limit": 7}
    )
    assert pages == 3
    assert len(seen) == 21
    assert seen == sorted(seen, reverse=True)
    assert set(ids) < set(seen)


async def test_exact_multiple_of_limit_ends_with_null_cursor(api, auth, make_wallet, engine):
    user = await make_wallet(10)
    await _earn_rows(engine, user, 5)
    page = (
        await api.http.get(
            f"/wallets/{user}/transactions", headers=auth.admin(), params={"limit": 6}
        )
    ).json()
    assert len(page["items"]) == 6
    assert page["next_cursor"] is None


async def test_pagination_under_concurrent_inserts(api, auth, engine, make_wallet):
    user = await make_wallet(10)
    existing = set(await _earn_rows(engine, user, 60))
    async with engine.connect() as conn:
        existing |= {
            r[0]
            for r in await conn.execute(
                text(
                    "SELECT tx_id FROM wallet_transactions JOIN wallets USING (wallet_id) "
                    "WHERE user_id = :u"
                ),
                {"u": user},
            )
        }
    stop = asyncio.Event()
    inserted: list[int] = []

    async def keep_inserting() -> None:
        i = 0
        while not stop.is_set():
            async with engine.begin() as conn:
                result = await ledger.earn(
                    conn, user_id=user, points=1, idempotency_key=f"live:{user}:{i}"
                )
            inserted.append(result.posting.tx_id)
            i += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(keep_inserting())
    try:
        url, headers = f"/wallets/{user}/transactions", auth.customer(user)
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            body = (await api.http.get(url, headers=headers, params=params)).json()
            seen += [item["tx_id"] for item in body["items"]]
            cursor = body["next_cursor"]
            await asyncio.sleep(0.005)  # let the writer commit between pages
            if cursor is None:
                break
    finally:
        stop.set()
        await writer
    assert len(inserted) > 5, "the writer must have inserted rows while pages were read"
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert existing <= set(seen), f"rows missing: {sorted(existing - set(seen))}"
    assert set(seen) <= existing | set(inserted)
    # A fresh first page shows the rows inserted meanwhile.
    first = (await api.http.get(url, headers=headers, params={"limit": 1})).json()
    assert first["items"][0]["tx_id"] == max(inserted)


async def test_filters(api, auth, engine, make_wallet):
    user = await make_wallet(1000)
    await _earn_rows(engine, user, 6, prefix="bk", booking=lambda i: f"bk-{i % 2}")
    async with engine.begin() as conn:
        await ledger.adjust(
            conn, user_id=user, points=-3, reason="r", idempotency_key=f"adj:{user}"
        )
        await ledger.hold(
            conn,
            user_id=user,
            points=10,
            idempotency_key=f"hold:{user}",
            booking_id="bk-0",
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        )
    url, headers = f"/wallets/{user}/transactions", auth.customer(user)

    async def types_of(params) -> list[tuple[str, str | None]]:
        response = await api.http.get(url, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [(i["type"], i["booking_id"]) for i in response.json()["items"]]

    assert await types_of({"type": "adjustment"}) == [("adjustment", None)]
    assert sorted(await types_of({"type": ["adjustment", "hold"]})) == [
        ("adjustment", None),
        ("hold", "bk-0"),
    ]
    assert await types_of({"booking_id": "bk-0"}) == [("hold", "bk-0")] + [("earn", "bk-0")] * 3
    assert await types_of({"booking_id": "bk-0", "type": "earn"}) == [("earn", "bk-0")] * 3
    assert len(await types_of({})) == 9
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await types_of({"since": future}) == []
    assert len(await types_of({"since": past, "until": future})) == 9
    assert await types_of({"until": past}) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"type": "gift"},
        {"since": "2026-01-01T00:00:00"},  # no timezone
        {"since": "yesterday"},
        {"cursor": "x" * 65},  # longer than any cursor: refused by the query's shape
        {"booking_id": "a b"},
        {"sort": "asc"},
    ],
)
async def test_bad_query_is_422(api, auth, make_wallet, params):
    user = await make_wallet(1)
    response = await api.http.get(
        f"/wallets/{user}/transactions", headers=auth.admin(), params=params
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("cursor", ["not-a-cursor", base64.urlsafe_b64encode(b"tx:-5").decode()])
async def test_a_cursor_the_api_did_not_hand_out_is_400(api, auth, make_wallet, cursor):
    user = await make_wallet(1)
    response = await api.http.get(
        f"/wallets/{user}/transactions", headers=auth.admin(), params={"cursor": cursor}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_cursor"
