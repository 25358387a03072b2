"""Point lots against real PostgreSQL: credits open lots, debits draw from the earliest
expiring, releases and refunds give points back to the lots they came from, and an expiry takes
only what is left of a due lot, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import ledger
from loyalty.core import db
from loyalty.core.errors import ValidationFailed

NOW = datetime.now(UTC)


def _months(n: int) -> datetime:
    """A moment about `n` months from now (31-day months: past `n` calendar months)."""
    return NOW + timedelta(days=31 * n)


async def _lots(conn: AsyncConnection, user_id: str) -> list[ledger.Lot]:
    wallet = await ledger.get_wallet(conn, user_id)
    return await ledger.lots_of(conn, wallet.wallet_id)


async def _movements(conn: AsyncConnection, tx_id: int) -> dict[int, int]:
    rows = await conn.execute(
        text("SELECT lot_id, points FROM lot_movements WHERE tx_id = :t"), {"t": tx_id}
    )
    return {lot_id: points for lot_id, points in rows}


async def _earn(conn: AsyncConnection, user_id: str, points: int, months: int | None) -> int:
    result = await ledger.earn(
        conn,
        user_id=user_id,
        points=points,
        idempotency_key=f"{user_id}:earn:{uuid.uuid4().hex[:8]}",
        validity_months=months,
    )
    return result.posting.tx_id


async def _validity_of(conn: AsyncConnection, lots: list[ledger.Lot]) -> list[str | None]:
    """Each lot's life as PostgreSQL counts it (expires_at - created_at, in months)."""
    rows = await conn.execute(
        text(
            "SELECT CASE WHEN expires_at IS NULL THEN NULL ELSE "
            "(SELECT min(m) FROM generate_series(0, 1200) m "
            " WHERE created_at + make_interval(months => m) = expires_at)::text END "
            "FROM point_lots WHERE lot_id = ANY(:ids) ORDER BY lot_id"
        ),
        {"ids": [lot.lot_id for lot in lots]},
    )
    return [months for (months,) in rows]


async def test_credits_open_lots_with_their_validity(engine: AsyncEngine, user_id: str) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, None)
        await _earn(conn, user_id, 50, 3)
        await _earn(conn, user_id, 25, 0)
        await ledger.adjust(
            conn,
            user_id=user_id,
            points=10,
            reason="goodwill",
            idempotency_key=f"{user_id}:adj",
            validity_months=1,
        )
        lots = await _lots(conn, user_id)
        validity = await _validity_of(conn, lots)
    assert [(lot.points, lot.remaining) for lot in lots] == [
        (100, 100),
        (50, 50),
        (25, 25),
        (10, 10),
    ]
    assert validity == ["24", "3", None, "1"]


async def test_the_engine_carries_the_default_validity(database_url: str, user_id: str) -> None:
    engine = db.make_engine(database_url, pool_size=1, points_validity_months=6)
    try:
        async with engine.begin() as conn:
            await _earn(conn, user_id, 100, None)
            await _earn(conn, user_id, 100, 2)
            lots = await _lots(conn, user_id)
            checked = (
                await conn.execute(
                    text(
                        "SELECT expires_at = created_at + interval '6 months', "
                        "expires_at = created_at + interval '2 months' FROM point_lots "
                        "WHERE lot_id = ANY(:ids) ORDER BY lot_id"
                    ),
                    {"ids": [lot.lot_id for lot in lots]},
                )
            ).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in checked] == [(True, False), (False, True)]


async def test_a_validity_out_of_bounds_is_refused(engine: AsyncEngine, user_id: str) -> None:
    async with engine.begin() as conn:
        for months in (-1, 1201):
            with pytest.raises(ValidationFailed, match="validity_months"):
                await _earn(conn, user_id, 100, months)


async def test_debits_draw_from_the_lots_that_expire_first(
    engine: AsyncEngine, user_id: str
) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 0)  # never expires: drawn last
        await _earn(conn, user_id, 100, 12)
        await _earn(conn, user_id, 100, 3)
        burned = await ledger.burn(
            conn, user_id=user_id, points=150, idempotency_key=f"{user_id}:b", counter_account="v"
        )
        never, twelve, three = await _lots(conn, user_id)
        drawn = await _movements(conn, burned.posting.tx_id)
        assert drawn == {three.lot_id: -100, twelve.lot_id: -50}
        assert (three.remaining, twelve.remaining, never.remaining) == (0, 50, 100)
        clawed = await ledger.clawback(
            conn, user_id=user_id, points=80, idempotency_key=f"{user_id}:c"
        )
        assert await _movements(conn, clawed.posting.tx_id) == {
            twelve.lot_id: -50,
            never.lot_id: -30,
        }
        # A replay draws nothing more.
        again = await ledger.clawback(
            conn, user_id=user_id, points=80, idempotency_key=f"{user_id}:c"
        )
        assert again.replayed
        assert sum(lot.remaining for lot in await _lots(conn, user_id)) == 70


async def test_a_release_gives_the_points_back_to_their_lots(
    engine: AsyncEngine, user_id: str
) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 3)
        await _earn(conn, user_id, 100, 12)
        held, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=130,
            idempotency_key=f"{user_id}:h",
            expires_at=NOW + timedelta(minutes=15),
        )
        before = [lot.remaining for lot in await _lots(conn, user_id)]
        released = await ledger.release(conn, hold_id=held.hold_id, idempotency_key=f"{user_id}:r")
        after = await _lots(conn, user_id)
        given_back = await _movements(conn, released.posting.tx_id)
    assert before == [0, 70]
    assert [lot.remaining for lot in after] == [100, 100] and len(after) == 2
    assert given_back == {after[0].lot_id: 100, after[1].lot_id: 30}


async def test_a_capture_moves_no_lot_and_its_refund_goes_back_to_them(
    engine: AsyncEngine, user_id: str
) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 3)
        await _earn(conn, user_id, 100, 12)
        held, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=150,
            idempotency_key=f"{user_id}:h",
            expires_at=NOW + timedelta(minutes=15),
        )
        captured = await ledger.capture(conn, hold_id=held.hold_id, idempotency_key=f"{user_id}:c")
        assert await _movements(conn, captured.posting.tx_id) == {}
        # A partial refund fills the lot that expires last first.
        first = await ledger.refund(
            conn,
            reverses_tx_id=captured.posting.tx_id,
            points=40,
            idempotency_key=f"{user_id}:rf1",
        )
        three, twelve = await _lots(conn, user_id)
        assert await _movements(conn, first.posting.tx_id) == {twelve.lot_id: 40}
        second = await ledger.refund(
            conn,
            reverses_tx_id=captured.posting.tx_id,
            points=110,
            idempotency_key=f"{user_id}:rf2",
        )
        assert await _movements(conn, second.posting.tx_id) == {
            twelve.lot_id: 10,
            three.lot_id: 100,
        }
        assert [lot.remaining for lot in await _lots(conn, user_id)] == [100, 100]


async def test_an_expiry_takes_only_what_is_left_of_a_due_lot_once(
    engine: AsyncEngine, user_id: str
) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 3)
        await _earn(conn, user_id, 100, 12)
        await ledger.burn(
            conn, user_id=user_id, points=60, idempotency_key=f"{user_id}:b", counter_account="v"
        )
        held, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=30,
            idempotency_key=f"{user_id}:h",
            expires_at=NOW + timedelta(minutes=15),
        )
        three, twelve = await _lots(conn, user_id)
        assert (three.remaining, twelve.remaining) == (10, 100)
        # Not due yet: nothing happens.
        assert await ledger.expire_lot(conn, lot_id=three.lot_id, as_of=_months(2)) is None
        expired = await ledger.expire_lot(conn, lot_id=three.lot_id, as_of=_months(4))
        assert expired is not None and not expired.replayed
        assert (expired.posting.type, expired.posting.amount) == ("expire", -10)
        assert expired.posting.counter_account == "breakage"
        assert expired.posting.metadata["lot_id"] == three.lot_id
        # Spent and held points are untouched: 200 - 60 spent - 10 expired, 30 of them held.
        assert (expired.wallet.balance, expired.wallet.held) == (130, 30)
        again = await ledger.expire_lot(conn, lot_id=three.lot_id, as_of=_months(5))
        assert again is not None and again.replayed
        assert again.posting.tx_id == expired.posting.tx_id
        # The hold can still be captured: expiry never took its points.
        captured = await ledger.capture(conn, hold_id=held.hold_id, idempotency_key=f"{user_id}:c")
        assert captured.wallet.balance == 100
        # A spent lot has nothing to expire.
        await ledger.burn(
            conn, user_id=user_id, points=100, idempotency_key=f"{user_id}:b2", counter_account="v"
        )
        assert await ledger.expire_lot(conn, lot_id=twelve.lot_id, as_of=_months(13)) is None
        # ... and closes, so no later run visits it again.
        closed = {lot.lot_id: lot.closed_at for lot in await _lots(conn, user_id)}
        assert closed[twelve.lot_id] is not None and closed[three.lot_id] is not None


async def test_a_release_after_its_lot_expired_is_due_at_once(
    engine: AsyncEngine, user_id: str
) -> None:
    """A hold reserves points; it never extends their life."""
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 3)
        await _earn(conn, user_id, 100, 12)
        held, _ = await ledger.hold(
            conn,
            user_id=user_id,
            points=60,
            idempotency_key=f"{user_id}:h",
            expires_at=NOW + timedelta(minutes=15),
        )
        three, twelve = await _lots(conn, user_id)
        expired = await ledger.expire_lot(conn, lot_id=three.lot_id, as_of=_months(4))
        assert expired is not None and expired.posting.amount == -40  # the 60 held stay
        released = await ledger.release(conn, hold_id=held.hold_id, idempotency_key=f"{user_id}:r")
        lots = await _lots(conn, user_id)
        db_now = (await conn.execute(text("SELECT now()"))).scalar_one()
        assert released.wallet.available == 160
        (new,) = [lot for lot in lots if lot.lot_id not in (three.lot_id, twelve.lot_id)]
        assert (new.points, new.remaining, new.expires_at) == (60, 60, db_now)
        assert {lot.lot_id: lot.remaining for lot in lots if lot is not new} == {
            three.lot_id: 0,
            twelve.lot_id: 100,
        }
        # The next expiry run takes them.
        again = await ledger.expire_lot(conn, lot_id=new.lot_id, as_of=_months(4))
        assert again is not None and again.posting.amount == -60


async def test_a_refund_after_expiry_opens_a_new_lot(engine: AsyncEngine, user_id: str) -> None:
    async with engine.begin() as conn:
        await _earn(conn, user_id, 100, 3)
        await _earn(conn, user_id, 100, 12)
        burned = await ledger.burn(
            conn, user_id=user_id, points=150, idempotency_key=f"{user_id}:b", counter_account="v"
        )
        three, twelve = await _lots(conn, user_id)
        await ledger.burn(
            conn, user_id=user_id, points=10, idempotency_key=f"{user_id}:b2", counter_account="v"
        )
        # The 12-month lot is expired (its 40 left go to breakage); the 3-month one is spent.
        expired = await ledger.expire_lot(conn, lot_id=twelve.lot_id, as_of=_months(13))
        assert expired is not None and expired.posting.amount == -40
        refund = await ledger.refund(
            conn,
            reverses_tx_id=burned.posting.tx_id,
            points=150,
            idempotency_key=f"{user_id}:rf",
        )
        lots = await _lots(conn, user_id)
        db_now = (await conn.execute(text("SELECT now()"))).scalar_one()
    by_id = {lot.lot_id: lot for lot in lots}
    # 100 back to the 3-month lot (not expired), 50 drawn from the expired one to a new lot.
    assert by_id[three.lot_id].remaining == 100
    assert by_id[twelve.lot_id].remaining == 0
    (new,) = [lot for lot in lots if lot.lot_id not in (three.lot_id, twelve.lot_id)]
    assert (new.points, new.remaining, new.opened_by_tx_id) == (50, 50, refund.posting.tx_id)
    assert new.expires_at is not None and new.expires_at > db_now + timedelta(days=700)
    assert refund.wallet.balance == 150


async def test_the_next_expiry_sums_the_lots_due_that_day(
    engine: AsyncEngine, user_id: str
) -> None:
    async with engine.begin() as conn:
        wallet_id = (await ledger.open_wallet(conn, user_id)).wallet_id
        assert await ledger.next_expiring(conn, wallet_id) is None
        await _earn(conn, user_id, 100, 0)
        assert await ledger.next_expiring(conn, wallet_id) is None  # never expires
        await _earn(conn, user_id, 70, 12)
        await _earn(conn, user_id, 30, 3)
        await _earn(conn, user_id, 20, 3)
        await ledger.burn(
            conn, user_id=user_id, points=35, idempotency_key=f"{user_id}:b", counter_account="v"
        )
        nxt = await ledger.next_expiring(conn, wallet_id)
        lots = await _lots(conn, user_id)
    assert nxt is not None and nxt.points == 15
    assert nxt.expires_at == lots[2].expires_at


async def test_due_lots_pages_by_expiry_and_id(engine: AsyncEngine, new_user_id) -> None:
    users = [new_user_id() for _ in range(3)]
    async with engine.begin() as conn:
        for user in users:
            await _earn(conn, user, 10, 1)
            await _earn(conn, user, 10, 2)
        mine = {lot.lot_id for user in users for lot in await _lots(conn, user)}
        # Other tests' lots are due too; take the pages until ours are all seen.
        seen: list[ledger.Lot] = []
        after = None
        while True:
            page = await ledger.due_lots(conn, as_of=_months(3), after=after, limit=2)
            if not page:
                break
            seen += page
            after = (page[-1].expires_at, page[-1].lot_id)
            assert page[-1].expires_at is not None
    keys = [(lot.expires_at, lot.lot_id) for lot in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert mine <= {lot.lot_id for lot in seen}
