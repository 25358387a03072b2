"""PointsExpiryWorkflow on Temporal's time-skipping test server, against real PostgreSQL: the
workflow's clock is skipped months ahead of the database's, past the lots the test opened, so a
run at the workflow's own `now` finds them due.

A run walks every lot of the database, so assertions cover every lot (from a snapshot taken
before) or only the wallets a test made. After each test the ledger invariants are checked
(tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.expiry import helpers
from tests.expiry.conftest import Clock
from tests.expiry.helpers import Expire
from tests.harness.histories import SaveHistory
from tests.harness.wallets import new_user


async def test_expires_exactly_the_due_lots_over_batches_and_runs(
    engine: AsyncEngine, clock: Clock, expire: Expire, client: Client, save_history: SaveHistory
) -> None:
    months = await clock.months_ahead()
    users = [new_user() for _ in range(24)]
    for n, user in enumerate(users):
        await helpers.earn(engine, user, 100 + n, months)  # due once the clock is skipped
        await helpers.earn(engine, user, 1000, months + 12)  # not due
        if n % 4 == 1:
            await helpers.burn(engine, user, 40)  # from the due lot: its rest expires
        if n % 4 == 2:
            await helpers.burn(engine, user, 100 + n)  # the due lot spent whole: nothing expires
        if n % 4 == 3:
            await helpers.earn(engine, user, 7, 0)  # never expires
    before_wallets = {u: await helpers.wallet(engine, u) for u in users}
    await clock.skip_to(await clock.months_from_now(months, days=2))
    before = await helpers.lots(engine)

    result, handle = await expire(batch_size=5, batches_per_run=2, reminder_days=0)

    progress = result.progress
    due = helpers.due(before, progress.as_of)
    assert len(due) >= 18  # ours at least: 24 wallets, 6 of them spent their due lot whole
    assert (progress.status, progress.phase) == ("done", "done")
    assert progress.lots_expired == len(due)
    assert progress.points_expired == sum(lot.remaining for lot in due.values())
    assert progress.wallets_touched == len({lot.wallet_id for lot in due.values()})
    # Pages of 5 of every due lot not closed (the spent ones too) up to a short last one, two
    # batches per run.
    visited = helpers.visited(before, progress.as_of)
    assert len(visited) == len(due) + 6
    assert progress.batches == len(visited) // 5 + 1
    assert progress.runs == (progress.batches + 1) // 2

    after = await helpers.lots(engine)
    # Every lot it visited is closed now, and a second run would not page through them again.
    assert all(after[lot_id].closed_at is not None for lot_id in visited)
    postings = await helpers.expire_postings(engine, progress.tx_watermark)
    assert set(postings) == set(due)  # one expire posting for each due lot, and no other
    for lot_id, lot in before.items():
        if lot_id in due:
            assert after[lot_id].remaining == 0 and after[lot_id].expired_tx_id is not None
            assert postings[lot_id] == (-lot.remaining, "breakage", f"expire:lot:{lot_id}")
        elif lot_id in visited:  # due but spent: closed, nothing posted
            assert after[lot_id] == dataclasses.replace(lot, closed_at=after[lot_id].closed_at)
        else:
            assert after[lot_id] == lot  # not due or never expiring: untouched

    for n, user in enumerate(users):
        was, now = before_wallets[user], await helpers.wallet(engine, user)
        expired = {0: 100 + n, 1: 100 + n - 40, 2: 0, 3: 100 + n}[n % 4]
        assert now.balance == was.balance - expired, user  # spent points never expire
        assert (now.held, now.lifetime_points) == (was.held, was.lifetime_points)

    first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    events = (await first.fetch_history()).events
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    await save_history(
        "continued_as_new", handle.id, run_id=handle.first_execution_run_id, all_runs=True
    )

    # The next run at the same instant finds nothing left to expire. The instant is given: the
    # shared time-skipping server may have jumped to another test's timer since, months ahead.
    again, _ = await expire(batch_size=50, reminder_days=0, as_of=progress.as_of)
    assert (again.progress.lots_expired, again.progress.points_expired) == (0, 0)
    assert again.progress.wallets_touched == 0
    assert await helpers.lots(engine) == after


async def test_reminds_each_customer_once_per_run_and_each_lot_once(
    engine: AsyncEngine, clock: Clock, expire: Expire, save_history: SaveHistory
) -> None:
    months = await clock.months_ahead()
    two, one, later, spent = new_user(), new_user(), new_user(), new_user()
    # Opened now, skipped to `months` + 2 days: the `months + 1` lots are due in 27-30 days.
    soon_a = await helpers.earn(engine, two, 300, months + 1)
    soon_b = await helpers.earn(engine, two, 200, months + 1)
    await helpers.earn(engine, two, 900, months + 6)  # outside the window
    await helpers.earn(engine, two, 50, months)  # due: expired, not reminded
    soon_c = await helpers.earn(engine, one, 80, months + 1)
    await helpers.earn(engine, later, 500, months + 6)
    await helpers.earn(engine, spent, 60, months + 1)
    await helpers.burn(engine, spent, 60)
    await clock.skip_to(await clock.months_from_now(months, days=2))
    before = await helpers.lots(engine)

    # Pages of two lots: `two`'s lots may fall in different pages, still one reminder.
    result, handle = await expire(batch_size=2, batches_per_run=3, reminder_days=45)

    progress = result.progress
    assert progress.reminder_until == progress.as_of + timedelta(days=45)
    first = f"points_expiring:{{}}:{progress.expiry_id}"
    expires = {lot: before[lot].expires_at for lot in (soon_a, soon_b, soon_c)}
    assert await helpers.reminders_of(engine, two) == [
        (
            first.format(two),
            {
                "points": 500,
                "expires_at": min(expires[soon_a], expires[soon_b]).isoformat(),
                "lots": 2,
            },
        )
    ]
    assert await helpers.reminders_of(engine, one) == [
        (first.format(one), {"points": 80, "expires_at": expires[soon_c].isoformat(), "lots": 1})
    ]
    assert await helpers.reminders_of(engine, later) == []
    assert await helpers.reminders_of(engine, spent) == []
    await save_history("reminders", handle.id, run_id=handle.first_execution_run_id, all_runs=True)

    # Every lot in the window was reminded of by this run, in one notification per customer,
    # and each announced as a points.expiring event.
    window = {
        lot_id
        for lot_id, lot in before.items()
        if lot.remaining > 0
        and lot.expires_at is not None
        and progress.as_of < lot.expires_at <= progress.reminder_until
    }
    async with engine.connect() as conn:
        recorded = dict(
            (
                await conn.execute(
                    text(
                        "SELECT lot_id, expiry_id FROM point_lot_reminders WHERE lot_id = ANY(:l)"
                    ),
                    {"l": list(window)},
                )
            ).all()
        )
        notes, events = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE channel = 'notify' "
                    "AND kind = 'points_expiring'), count(*) FILTER (WHERE channel = 'event' "
                    "AND kind = 'points.expiring') "
                    "FROM notification_outbox WHERE idempotency_key LIKE :k"
                ),
                {"k": f"%points_expiring:%:{progress.expiry_id}"},
            )
        ).one()
    assert set(recorded) == window
    ours = {lot for lot, run in recorded.items() if run == progress.expiry_id}
    assert {soon_a, soon_b, soon_c} <= ours
    assert progress.lots_reminded == len(ours)
    assert progress.customers_reminded == notes == events
    assert progress.customers_reminded == len({before[lot].wallet_id for lot in ours})

    # A new lot in the window: the next run (at the same instant, as above) reminds of it alone;
    # the others never again.
    soon_d = await helpers.earn(engine, one, 25, months + 1)
    again, _ = await expire(batch_size=2, reminder_days=45, as_of=progress.as_of)
    assert len(await helpers.reminders_of(engine, two)) == 1
    theirs = await helpers.reminders_of(engine, one)
    assert [key for key, _ in theirs] == [
        first.format(one),
        f"points_expiring:{one}:{again.progress.expiry_id}",
    ]
    async with engine.connect() as conn:
        expiry_of_d = (
            await conn.execute(
                text("SELECT expires_at FROM point_lots WHERE lot_id = :l"), {"l": soon_d}
            )
        ).scalar_one()
    assert theirs[1][1] == {"points": 25, "expires_at": expiry_of_d.isoformat(), "lots": 1}
    assert again.progress.lots_reminded == 1 and again.progress.customers_reminded == 1
