"""Value on every row (migration 0013): every posting kind is valued by the database at the rate
in force when it is posted, or its campaign's own rate; a new rate values only what is posted
from its start on; the rates are never rewritten.

The tests share the session's database with every other test, so an expected value is always
worked out from the rate that was in force at the row's `created_at` (read from point_rates),
never assumed to be the seed's 1 point = 1 VND."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import ledger
from loyalty.core import db
from loyalty.ledger.invariants import find_violations

_IN_FORCE = text(
    "SELECT rate_id, point_value_minor, currency FROM point_rates WHERE starts_at <= :at "
    "ORDER BY starts_at DESC LIMIT 1"
)
_ROWS = text(
    "SELECT tx_id, type, amount, held_delta, created_at, value_amount, value_rate, "
    "value_currency, rate_id, value_campaign_id FROM wallet_transactions "
    "WHERE wallet_id = (SELECT wallet_id FROM wallets WHERE user_id = :u) ORDER BY tx_id"
)


def valued(points: int, rate: Decimal) -> int:
    """points x rate in whole minor units, half away from zero (Decimal's ROUND_HALF_UP)."""
    return int((points * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def rows_of(engine: AsyncEngine, user: str) -> list[Mapping[str, Any]]:
    async with engine.connect() as conn:
        return list((await conn.execute(_ROWS, {"u": user})).mappings())


async def in_force(conn: AsyncConnection, at: datetime) -> Mapping[str, Any]:
    return (await conn.execute(_IN_FORCE, {"at": at})).mappings().one()


async def assert_valued_at_rate_in_force(engine: AsyncEngine, row: Mapping[str, Any]) -> None:
    async with engine.connect() as conn:
        rate = await in_force(conn, row["created_at"])
    points = row["amount"] if row["amount"] != 0 else row["held_delta"]
    assert row["value_campaign_id"] is None, row
    assert (row["rate_id"], row["value_rate"], row["value_currency"]) == (
        rate["rate_id"],
        rate["point_value_minor"],
        rate["currency"],
    ), row
    assert row["value_amount"] == valued(points, rate["point_value_minor"]), row


async def test_every_posting_kind_is_valued_at_the_rate_in_force(engine, user_id):
    later = datetime.now(UTC) + timedelta(minutes=15)
    async with db.transaction(engine) as conn:
        earn = await ledger.earn(conn, user_id=user_id, points=1001, idempotency_key=f"e:{user_id}")
        await ledger.adjust(
            conn, user_id=user_id, points=37, reason="goodwill", idempotency_key=f"a+:{user_id}"
        )
        await ledger.adjust(
            conn, user_id=user_id, points=-5, reason="typo", idempotency_key=f"a-:{user_id}"
        )
        burn = await ledger.burn(
            conn,
            user_id=user_id,
            points=101,
            idempotency_key=f"b:{user_id}",
            counter_account="voucher_sales",
        )
        captured, _ = await ledger.hold(
            conn, user_id=user_id, points=203, idempotency_key=f"h1:{user_id}", expires_at=later
        )
        capture = await ledger.capture(
            conn,
            hold_id=captured.hold_id,
            idempotency_key=f"c:{user_id}",
            currency_amount=203,
            currency="VND",
        )
        released, _ = await ledger.hold(
            conn, user_id=user_id, points=77, idempotency_key=f"h2:{user_id}", expires_at=later
        )
        await ledger.release(conn, hold_id=released.hold_id, idempotency_key=f"r:{user_id}")
        await ledger.refund(
            conn, reverses_tx_id=capture.posting.tx_id, points=53, idempotency_key=f"rf:{user_id}"
        )
        await ledger.refund(
            conn, reverses_tx_id=burn.posting.tx_id, points=11, idempotency_key=f"rb:{user_id}"
        )
        await ledger.clawback(
            conn,
            user_id=user_id,
            points=9,
            idempotency_key=f"cb:{user_id}",
            reverses_tx_id=earn.posting.tx_id,
        )
        await ledger.adjust(
            conn,
            user_id=user_id,
            points=3,
            reason="short-lived",
            idempotency_key=f"a3:{user_id}",
            validity_months=1,
        )
        wallet = await ledger.get_wallet(conn, user_id)
        lots = [lot for lot in await ledger.lots_of(conn, wallet.wallet_id) if lot.remaining]
        soonest = min(lots, key=lambda lot: lot.expires_at or later)
        await ledger.expire_lot(conn, lot_id=soonest.lot_id, as_of=later + timedelta(days=40))
    rows = await rows_of(engine, user_id)
    kinds = [(r["type"], r["amount"], r["held_delta"]) for r in rows]
    assert kinds == [
        ("earn", 1001, 0),
        ("adjustment", 37, 0),
        ("adjustment", -5, 0),
        ("burn", -101, 0),
        ("hold", 0, 203),
        ("capture", -203, -203),
        ("hold", 0, 77),
        ("release", 0, -77),
        ("refund", 53, 0),
        ("refund", 11, 0),
        ("clawback", -9, 0),
        ("adjustment", 3, 0),
        ("expire", -3, 0),
    ]
    for row in rows:
        await assert_valued_at_rate_in_force(engine, row)
    # Signed like the points moved: a hold is valued positive, its release negative.
    signs = [(r["type"], r["value_amount"] > 0) for r in rows]
    assert signs == [(t, points > 0 or held > 0) for t, points, held in kinds]
    # The listing reads the value with the row.
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user_id)
        listed = await ledger.list_transactions(conn, wallet.wallet_id, limit=50)
    by_id = {p.tx_id: p for p in listed}
    for row in rows:
        posting = by_id[row["tx_id"]]
        assert (posting.value_amount, posting.value_rate, posting.rate_id) == (
            row["value_amount"],
            row["value_rate"],
            row["rate_id"],
        )
    # The capture keeps its own meaning of currency_amount (the discount) beside the value.
    assert by_id[capture.posting.tx_id].currency_amount == 203


async def _db_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as conn:
        now: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
    return now


async def _add_rate(api: Any, starts_at: datetime, value: str) -> dict[str, Any]:
    body = {"starts_at": starts_at.isoformat(), "currency": "VND", "point_value_minor": value}
    response = await api.http.post("/rates", headers=api.admin, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_new_rate_values_postings_from_its_start_and_never_earlier_ones(
    api, engine, user_id
):
    async def earn(points: int, key: str) -> int:
        async with db.autocommit(engine) as conn:
            result = await ledger.earn(
                conn, user_id=user_id, points=points, idempotency_key=f"{key}:{user_id}"
            )
        return result.posting.tx_id

    async def adjust(points: int, key: str) -> None:
        async with db.autocommit(engine) as conn:
            await ledger.adjust(
                conn, user_id=user_id, points=points, reason="t", idempotency_key=f"{key}:{user_id}"
            )

    await earn(1001, "before")
    [before] = await rows_of(engine, user_id)
    async with engine.connect() as conn:
        previous = await in_force(conn, await _db_now(engine))
    # Far enough ahead that the next earn is posted before it starts, even on a busy machine.
    starts = await _db_now(engine) + timedelta(seconds=4)
    half = await _add_rate(api, starts, "0.5")
    assert half["in_force"] is False
    await earn(3, "written-before-its-start")  # the rate exists, but has not started
    await asyncio.sleep((starts - await _db_now(engine)).total_seconds() + 0.05)
    assert await _db_now(engine) > starts
    await earn(3, "after")
    await adjust(-3, "after-debit")
    # Put the rate back (a further rate: nothing is rewritten) for the tests that follow.
    restored = await _add_rate(
        api,
        await _db_now(engine) + timedelta(seconds=1),
        format(previous["point_value_minor"].normalize(), "f"),
    )

    rows = await rows_of(engine, user_id)
    assert rows[0] == before  # the row posted before the rate was written is as it was
    _, early, late, debit = rows
    assert early["created_at"] < starts <= late["created_at"]
    assert early["rate_id"] == previous["rate_id"] != half["rate_id"]
    assert early["value_amount"] == valued(3, previous["point_value_minor"])
    # 3 points at 0.5 is 1.5, rounded half away from zero: 2, and -3 points -2.
    assert (late["rate_id"], late["value_rate"], late["value_amount"]) == (
        half["rate_id"],
        Decimal("0.5"),
        2,
    )
    assert (debit["rate_id"], debit["value_amount"]) == (half["rate_id"], -2)
    listed = (await api.http.get("/rates", headers=api.admin)).json()
    by_id = {rate["rate_id"]: rate for rate in listed}
    assert by_id[half["rate_id"]]["point_value_minor"] == "0.5"
    assert by_id[restored["rate_id"]]["starts_at"] > by_id[half["rate_id"]]["starts_at"]
    assert listed[0]["starts_at"] is None  # the seed: from the beginning
    assert sum(rate["in_force"] for rate in listed) == 1


def _campaign(product: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "campaign_id": f"v-{uuid.uuid4().hex[:10]}",
        "name": "Valued double points",
        "kind": "multiplier",
        "multiplier_pct": 200,
        "product_types": [product],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    body.update(overrides)
    return body


async def test_an_earn_under_a_campaign_is_valued_at_its_own_rate(api, engine, user_id):
    product = f"villa-{uuid.uuid4().hex[:8]}"
    plain = _campaign(product, campaign_id=f"a-{uuid.uuid4().hex[:8]}")  # first, no own rate
    own = _campaign(product, campaign_id=f"b-{uuid.uuid4().hex[:8]}", point_value_minor="2.5")
    for body in (plain, own):
        response = await api.http.post("/campaigns", headers=api.admin, json=body)
        assert response.status_code == 201, response.text
    assert response.json()["point_value_minor"] == "2.5"

    async def earn(booking: str, amount: int, product_type: str) -> dict[str, Any]:
        response = await api.http.post(
            f"/wallets/{user_id}/earn",
            headers=api.service,
            json={
                "booking_id": booking,
                "amount_paid": amount,
                "currency": "VND",
                "product_type": product_type,
            },
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    # 150,500 VND: 150 base + 150 of each 200 % campaign = 450 points, at 2.5 VND: 1,125.
    under = await earn(f"bk-{uuid.uuid4().hex[:10]}", 150_500, product)
    elsewhere = await earn(f"bk-{uuid.uuid4().hex[:10]}", 7_000, f"other-{product}")
    assert (under["points"], elsewhere["points"]) == (450, 7)
    async with db.autocommit(engine) as conn:
        await ledger.clawback(
            conn,
            user_id=user_id,
            points=5,
            idempotency_key=f"cb:{user_id}",
            reverses_tx_id=under["transaction"]["tx_id"],
        )
    # A later change of the campaign's rate values later earns only.
    patched = await api.http.patch(
        f"/campaigns/{own['campaign_id']}", headers=api.admin, json={"point_value_minor": "3"}
    )
    assert patched.status_code == 200 and patched.json()["point_value_minor"] == "3"

    first, second, clawback = await rows_of(engine, user_id)
    assert first["value_campaign_id"] == own["campaign_id"]
    assert (first["value_rate"], first["value_amount"]) == (Decimal("2.5"), 1125)
    # The earn's own currency amount keeps its meaning: the money paid.
    async with engine.connect() as conn:
        paid = (
            await conn.execute(
                text("SELECT currency_amount FROM wallet_transactions WHERE tx_id = :t"),
                {"t": first["tx_id"]},
            )
        ).scalar_one()
    assert paid == 150_500
    # Taking back points of that earn takes them back at the same rate.
    assert (clawback["value_campaign_id"], clawback["value_amount"]) == (
        own["campaign_id"],
        valued(-5, Decimal("2.5")),
    )
    await assert_valued_at_rate_in_force(engine, second)  # no campaign applied
    # The listing shows it.
    page = (await api.http.get(f"/wallets/{user_id}/transactions", headers=api.admin)).json()
    listed = {item["tx_id"]: item for item in page["items"]}[first["tx_id"]]
    assert (listed["value_amount"], listed["value_rate"], listed["value_campaign_id"]) == (
        1125,
        "2.5",
        own["campaign_id"],
    )
    assert listed["value_currency"] == "VND"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE point_rates SET point_value_minor = point_value_minor + 1",
        "DELETE FROM point_rates",
        "TRUNCATE point_rates",
        "INSERT INTO point_rates (starts_at, currency, point_value_minor, created_by) "
        "VALUES (now() - interval '1 day', 'VND', 2, 'test')",
    ],
)
async def test_rates_are_never_rewritten_even_by_the_owner(owner_engine, engine, statement):
    async with engine.connect() as conn:
        before = list(await conn.execute(text("SELECT * FROM point_rates ORDER BY rate_id")))
    async with owner_engine.connect() as conn:
        with pytest.raises(DBAPIError, match=r"insert-only|in the past"):
            await conn.execute(text(statement))
        await conn.rollback()
    # The service's role holds no such privilege at all.
    if not statement.startswith("INSERT"):
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="permission denied"):
                await conn.execute(text(statement))
            await conn.rollback()
    async with engine.connect() as conn:
        after = list(await conn.execute(text("SELECT * FROM point_rates ORDER BY rate_id")))
    assert after == before


async def test_the_invariant_check_finds_a_row_whose_value_is_not_its_points_at_its_rate(
    owner_engine, make_wallet
):
    """A row inserted with a value of its own making (the trigger keeps a value it is given):
    inside a transaction that is rolled back, so no other test sees it."""
    user = await make_wallet(10)
    async with owner_engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
        tx_id = (
            await conn.execute(
                text(
                    "INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account, "
                    "idempotency_key, request_hash, value_amount, value_rate, value_currency, "
                    "rate_id) VALUES (:w, 'adjustment', 0, 'adjustment', :k, 'x', 5, 1, 'VND', 1) "
                    "RETURNING tx_id"
                ),
                {"w": wallet.wallet_id, "k": f"bad-value:{user}"},
            )
        ).scalar_one()
        violations = await find_violations(conn)
        await conn.rollback()
    mine = [v for v in violations if v.subject == str(tx_id)]
    assert [(v.check, v.actual, v.expected) for v in mine] == [
        ("every row's value is its points at its rate", 5, 0)
    ]
