"""The liability report against a ledger computed by hand, figure by figure, in a database of
its own (the suite's database is shared by every test, so its totals are nobody's to predict):
now, at a moment between two rounds of postings (read again after the second), and before the
first posting; as JSON and CSV over the API; and the invariant that ties it to the wallets."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import devstack
from loyalty import ledger
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.earning import accrual
from loyalty.earning.contracts import EarnCommand
from loyalty.ledger import liability
from loyalty.ledger.invariants import find_violations, liability_violations
from tests.harness.api import Api

VALUATION = liability.Valuation("VND", 3)  # 3 minor units a point: every value is points x 3


@pytest.fixture
async def report_database(
    embedded_postgres: devstack.EmbeddedPostgres,
) -> devstack.ServiceDatabase:
    """A fresh database for each test, migrated to the head: its ledger is the test's alone.
    Its rate is 3 minor units a point from now on, so the accounts' booked values (each row's
    value_amount) and the report's base-rate figures are both points x 3."""
    # Migrating runs its own event loop: off the tests' loop, in a thread.
    name = f"loyalty_liability_{uuid.uuid4().hex[:12]}"
    database = await asyncio.to_thread(embedded_postgres.service_database, name)
    owner = make_engine(database.owner_url, pool_size=1)
    try:
        async with owner.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO point_rates (starts_at, currency, point_value_minor, created_by) "
                    "VALUES (clock_timestamp() + interval '5 milliseconds', 'VND', 3, 'test')"
                )
            )
    finally:
        await owner.dispose()
    await asyncio.sleep(0.01)  # the rate is in force for every posting of the test
    return database


@pytest.fixture
async def report_engine(report_database: devstack.ServiceDatabase) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(report_database.app_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
def settings_overrides(report_database: devstack.ServiceDatabase) -> dict[str, Any]:
    return {"database_url": report_database.app_url, "point_value_minor": 3}


def _key() -> str:
    return f"liability-test:{uuid.uuid4()}"


async def _clock(engine: AsyncEngine) -> datetime:
    """The database's clock now: every posting committed so far was made before it, every
    later one after (created_at is its transaction's start)."""
    async with engine.connect() as conn:
        moment: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
    return moment


async def _report(engine: AsyncEngine, as_of: datetime | None) -> liability.LiabilityReport:
    async with engine.connect() as conn:
        return await liability.liability_report(conn, VALUATION, as_of)


async def _pending(conn: AsyncConnection, user: str, booking: str, paid: int) -> int:
    now = datetime.now(UTC)
    cmd = EarnCommand(
        booking_id=booking,
        user_id=user,
        payment_id=f"pay-{booking}",
        amount_paid=paid,
        currency="VND",
        paid_at=now,
        pending_until=now + timedelta(days=30),
    )
    outcome = (await accrual.accrue(conn, cmd, Settings(environment="test"))).outcome
    assert outcome.status == "pending"
    return outcome.points


async def _first_round(engine: AsyncEngine) -> str:
    """Postings whose figures the test computes by hand; returns the pending booking that the
    second round posts."""
    u1, u2, u3, u4 = (f"liab-{n}-{uuid.uuid4().hex[:8]}" for n in range(1, 5))
    async with engine.begin() as c:
        # u1: lots B (1000, 24 months), C (500, 6), A (200, 2)
        earn = await ledger.earn(c, user_id=u1, points=1000, idempotency_key=_key())
        await ledger.earn(
            c, user_id=u1, points=500, idempotency_key=_key(),
            counter_account="issuance:campaign", validity_months=6,
        )  # fmt: skip
        await ledger.adjust(
            c, user_id=u1, points=200, reason="goodwill", idempotency_key=_key(),
            validity_months=2,
        )  # fmt: skip
        await ledger.adjust(c, user_id=u1, points=-50, reason="fix", idempotency_key=_key())
        # draws A 150 then C 150 (expiring first first); captured: spent at checkout
        hold, _ = await ledger.hold(
            c, user_id=u1, points=300, idempotency_key=_key(),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )  # fmt: skip
        await ledger.capture(c, hold_id=hold.hold_id, idempotency_key=_key())
        # a voucher: C 350, B 50; 100 of it refunded, back to B 50 and C 50
        burn = await ledger.burn(
            c, user_id=u1, points=400, idempotency_key=_key(), counter_account="voucher_sales"
        )
        spent = burn.posting.tx_id
        await ledger.refund(c, reverses_tx_id=spent, points=100, idempotency_key=_key())
        # a refunded booking's points taken back: C 50, B 30. u1 ends with B 970.
        await ledger.clawback(
            c, user_id=u1, points=80, idempotency_key=_key(),
            reverses_tx_id=earn.posting.tx_id, counter_account="issuance:refund-clawback",
        )  # fmt: skip
    async with engine.begin() as c:
        # u2: lot D (300, 1 month); two holds from it, then D expires (to breakage) and the
        # released hold's 50 points come back as a lot due at once: overdue. 100 stay held.
        await ledger.earn(c, user_id=u2, points=300, idempotency_key=_key(), validity_months=1)
        lot = (await ledger.lots_of(c, (await ledger.get_wallet(c, u2)).wallet_id))[0]
        expires = datetime.now(UTC) + timedelta(hours=1)
        await ledger.hold(c, user_id=u2, points=100, idempotency_key=_key(), expires_at=expires)
        second, _ = await ledger.hold(
            c, user_id=u2, points=50, idempotency_key=_key(), expires_at=expires
        )
    async with engine.begin() as c:
        expired = await ledger.expire_lot(
            c, lot_id=lot.lot_id, as_of=datetime.now(UTC) + timedelta(days=40)
        )
        assert expired is not None and expired.posting.amount == -150
    async with engine.begin() as c:
        await ledger.release(c, hold_id=second.hold_id, idempotency_key=_key())
        # u3: two earns pending (700 and 400 points at 1 point per 1,000 VND)
        assert await _pending(c, u3, f"bk-{uuid.uuid4().hex[:10]}", 700_000) == 700
        later = f"bk-{uuid.uuid4().hex[:10]}"
        assert await _pending(c, u3, later, 400_000) == 400
        # u4: a lot in each window: 2 months (59 to 62 days), 6 months (181 to 184), never
        for points, months in ((60, 2), (70, 6), (80, 0)):
            await ledger.earn(
                c, user_id=u4, points=points, idempotency_key=_key(), validity_months=months
            )
    return f"{u3} {later} {u4}"


def _figures(report: liability.LiabilityReport) -> dict[str, Any]:
    """The report's numbers (points; each value is checked to be points x 3 apart)."""
    figures = [report.outstanding, report.held, report.available, report.pending]
    figures += [figure for _, figure in report.expiring]
    figures += [
        liability.Figure(points=a.points, value_minor=a.value_minor) for a in report.accounts
    ]
    assert all(f.value_minor == 3 * f.points for f in figures)
    return {
        "accounts": {
            a.counter_account: (a.kind, a.credited_points, a.debited_points, a.points)
            for a in report.accounts
        },
        "outstanding": report.outstanding.points,
        "held": report.held.points,
        "available": report.available.points,
        "pending": report.pending.points,
        "expiring": {name: figure.points for name, figure in report.expiring},
    }


AFTER_FIRST_ROUND = {
    "accounts": {
        "adjustment": ("adjustment", 200, 50, 150),
        "breakage": ("breakage", 0, 150, -150),
        "issuance:base": ("issuance", 1000 + 300 + 210, 0, 1510),
        "issuance:campaign": ("issuance", 500, 0, 500),
        "issuance:refund-clawback": ("issuance", 0, 80, -80),
        "redemption": ("redemption", 0, 300, -300),  # holds and releases move no balance
        "voucher_sales": ("voucher_sales", 100, 400, -300),
    },
    "outstanding": 970 + 150 + 210,  # u1, u2 (100 of it held), u4
    "held": 100,
    "available": 1230,
    "pending": 1100,
    "expiring": {
        "overdue": 50,  # u2's released points
        "within_30_days": 50,
        "within_90_days": 50 + 60,
        "within_365_days": 50 + 60 + 70,
        "never": 80,
        "in_lots": 970 + 50 + 210,  # B, u2's 50, u4's three lots: the available points
    },
}
# The second round: the 400 pending points are posted (a lot of 24 months), and u4 buys a
# voucher for 60 points, which empties the 2-month lot.
AFTER_SECOND_ROUND = {
    **AFTER_FIRST_ROUND,
    "accounts": {
        **AFTER_FIRST_ROUND["accounts"],
        "issuance:base": ("issuance", 1510 + 400, 0, 1910),
        "voucher_sales": ("voucher_sales", 100, 460, -360),
    },
    "outstanding": 1330 + 400 - 60,
    "available": 1570,
    "pending": 700,
    "expiring": {
        "overdue": 50,
        "within_30_days": 50,
        "within_90_days": 50,
        "within_365_days": 50 + 70,
        "never": 80,
        "in_lots": 970 + 50 + 70 + 80 + 400,
    },
}
EMPTY = {
    "accounts": {},
    "outstanding": 0,
    "held": 0,
    "available": 0,
    "pending": 0,
    "expiring": dict.fromkeys(AFTER_FIRST_ROUND["expiring"], 0),  # type: ignore[arg-type]
}


async def test_report_of_a_hand_computed_ledger(report_engine: AsyncEngine) -> None:
    before = await _clock(report_engine)
    assert _figures(await _report(report_engine, None)) == EMPTY  # a fresh database
    u3, booking, u4 = (await _first_round(report_engine)).split()
    between = await _clock(report_engine)
    first = await _report(report_engine, between)
    assert first.as_of == between and first.currency == "VND" and first.point_value_minor == 3
    assert _figures(first) == AFTER_FIRST_ROUND

    async with report_engine.begin() as c:
        posted = await accrual.activate(c, booking, u3)
        assert (posted.status, posted.points) == ("posted", 400)
        await ledger.burn(
            c, user_id=u4, points=60, idempotency_key=_key(), counter_account="voucher_sales"
        )
    assert _figures(await _report(report_engine, None)) == AFTER_SECOND_ROUND
    assert _figures(await _report(report_engine, await _clock(report_engine))) == (
        AFTER_SECOND_ROUND
    )
    # The past stays as it was: the same moment reads the same figures after later postings.
    assert await _report(report_engine, between) == first
    assert _figures(await _report(report_engine, before)) == EMPTY

    async with report_engine.connect() as conn:
        assert await find_violations(conn) == []


async def test_the_invariant_catches_a_wallet_that_disagrees(
    report_engine: AsyncEngine, report_database: devstack.ServiceDatabase
) -> None:
    user = f"liab-{uuid.uuid4().hex[:8]}"
    async with report_engine.begin() as c:
        await ledger.earn(c, user_id=user, points=10, idempotency_key=_key())
        await ledger.hold(
            c, user_id=user, points=4, idempotency_key=_key(),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )  # fmt: skip
    async with report_engine.connect() as conn:
        assert await liability_violations(conn) == []
    owner = make_engine(report_database.owner_url, pool_size=1)
    try:
        async with owner.begin() as conn:  # only the owner may write a wallet directly
            await conn.execute(text("UPDATE wallets SET balance = balance + 7, held = held + 2"))
            found = {(v.subject, v.actual, v.expected) for v in await liability_violations(conn)}
            await conn.rollback()
    finally:
        await owner.dispose()
    assert found == {
        ("outstanding points", 10, 17),
        ("held points", 4, 6),
        ("points in lots", 6, 11),
    }


async def test_the_api_answers_json_and_csv(api: Api, report_engine: AsyncEngine) -> None:
    await _first_round(report_engine)
    moment = await _clock(report_engine)
    expected = await _report(report_engine, moment)
    assert _figures(expected) == AFTER_FIRST_ROUND
    path = "/reports/liability"
    as_json = await api.http.get(path, params={"as_of": moment.isoformat()}, headers=api.admin)
    assert as_json.status_code == 200, as_json.text
    assert liability.LiabilityReport.model_validate(as_json.json()) == expected

    as_csv = await api.http.get(
        path, params={"as_of": moment.isoformat(), "format": "csv"}, headers=api.admin
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {row["as_of"] for row in rows} == {expected.as_of.isoformat()}
    lines = {(row["section"], row["item"]): row for row in rows}
    for account in expected.accounts:
        row = lines[(f"account:{account.kind}", account.counter_account)]
        assert (int(row["credited_points"]), int(row["debited_points"])) == (
            account.credited_points,
            account.debited_points,
        )
        written = (int(row["points"]), int(row["value_minor"]))
        assert written == (account.points, account.value_minor)
    for name in ("outstanding", "held", "available", "pending"):
        figure = getattr(expected, name)
        assert int(lines[("total", name)]["points"]) == figure.points
        assert int(lines[("total", name)]["value_minor"]) == figure.value_minor
    for name, figure in expected.expiring:
        assert int(lines[("expiring", name)]["points"]) == figure.points
    assert len(rows) == len(expected.accounts) + 4 + 6

    # A date is its close in UTC: nothing of this database existed before yesterday's.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    closed = await api.http.get(path, params={"as_of": str(yesterday)}, headers=api.admin)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["as_of"].startswith(str(yesterday + timedelta(days=1)))
    assert (body["accounts"], body["outstanding"]["points"]) == ([], 0)


async def test_only_admins_read_it_and_bad_dates_are_refused(api: Api, user_id: str) -> None:
    path = "/reports/liability"
    assert (await api.http.get(path)).status_code == 401
    for caller in (api.customer(user_id), api.service):
        refused = await api.http.get(path, headers=caller)
        assert refused.status_code == 403, refused.text
    today = datetime.now(UTC).date()
    for bad in ("yesterday", "2026-13-01", "1700000000", "2026-11-30T10:00:00", str(today)):
        answer = await api.http.get(path, params={"as_of": bad}, headers=api.admin)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["code"] == "validation_error"
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    answer = await api.http.get(path, params={"as_of": future}, headers=api.admin)
    assert answer.status_code == 422 and "future" in answer.json()["message"]
    wrong = await api.http.get(path, params={"format": "xml"}, headers=api.admin)
    assert wrong.status_code == 422
