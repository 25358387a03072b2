"""TierEvaluationWorkflow through a real worker, real Temporal and real PostgreSQL.

The evaluation walks every wallet in the database, so assertions either cover every wallet
(compared with the classification recomputed in Python) or only the wallets a test seeded."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from loyalty.tiers.rules import Ladder, notification_key, trailing_window_start
from tests.harness.histories import SaveHistory
from tests.harness.wallets import open_lots_of_seeded_earns
from tests.tiers.helpers import Evaluate, SeedWallet, direct_decisions, seed, tiers_of

GRACE = timedelta(days=30)


def _population(as_of: datetime, size: int, rng: random.Random) -> list[SeedWallet]:
    edges = [
        timedelta(days=364),
        timedelta(days=365),
        timedelta(days=366),
        as_of - trailing_window_start(as_of),
        as_of - trailing_window_start(as_of) - timedelta(microseconds=1),
    ]
    wallets = []
    for _ in range(size):
        earns = []
        for _ in range(rng.randint(0, 4)):
            age = rng.choice(edges) if rng.random() < 0.3 else timedelta(days=rng.uniform(0, 800))
            earns.append((rng.choice([1, 999, 5000, 9000, 20000, rng.randint(1, 25000)]), age))
        tier = rng.choice(["bronze", "silver", "gold"])
        pending = None
        if tier != "bronze" and rng.random() < 0.3:
            pending = as_of - rng.choice([timedelta(days=40), GRACE, GRACE - timedelta(seconds=1)])
        wallets.append(SeedWallet(tier, [(p, as_of - age) for p, age in earns], pending))
    return wallets


async def test_continues_as_new_and_matches_a_direct_computation(
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    ladder: Ladder,
    evaluate: Evaluate,
    temporal_client: Client,
    save_history: SaveHistory,
) -> None:
    as_of = datetime.now(UTC)
    await seed(owner_engine, _population(as_of, 3000, random.Random(20261125)))
    async with engine.connect() as conn:
        expected = await direct_decisions(conn, ladder, as_of, GRACE)
    moves = Counter(d.direction for d in expected.values())
    assert moves["upgrade"] > 100 and moves["downgrade"] > 100  # the data exercises both

    result, handle = await evaluate(
        as_of=as_of, batch_size=100, batches_per_run=5, downgrade_grace_days=30
    )

    progress = result.progress
    assert progress.status == "done"
    assert progress.wallets_evaluated == len(expected)
    assert (progress.upgraded, progress.downgraded) == (moves["upgrade"], moves["downgrade"])
    assert progress.downgrades_in_grace == sum(
        1 for d in expected.values() if d.downgrade_pending_since is not None
    )
    assert progress.runs >= len(expected) // 500
    first_run = temporal_client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    first = await first_run.fetch_history()
    assert first.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(first.events) < 100  # continue-as-new keeps each run's history small
    await save_history(
        "continued_as_new", handle.id, run_id=handle.first_execution_run_id, all_runs=True
    )

    actual = await tiers_of(engine)
    assert actual == {w: (d.tier, d.downgrade_pending_since) for w, d in expected.items()}

    async with engine.connect() as conn:
        history = (
            await conn.execute(
                text(
                    "SELECT h.wallet_id, h.to_tier, h.direction, o.kind FROM tier_history h "
                    "LEFT JOIN notification_outbox o ON o.idempotency_key = "
                    "'tier:' || h.wallet_id || ':' || h.evaluation_id || ':' || h.to_tier "
                    "WHERE h.evaluation_id = :e"
                ),
                {"e": progress.evaluation_id},
            )
        ).all()
    changed = {w: (d.tier, d.direction) for w, d in expected.items() if d.direction}
    assert {r[0]: (r[1], r[2]) for r in history} == changed
    assert all(r[3] == "tier_changed" for r in history)  # one notification per change

    # Running it again at the same instant changes nothing.
    again, _ = await evaluate(as_of=as_of, batch_size=700, downgrade_grace_days=30)
    assert (again.progress.upgraded, again.progress.downgraded) == (0, 0)
    assert again.progress.wallets_evaluated == len(expected)
    assert await tiers_of(engine) == actual
    async with engine.connect() as conn:
        recorded = await conn.execute(
            text("SELECT count(*) FROM tier_history WHERE evaluation_id = :e"),
            {"e": again.progress.evaluation_id},
        )
        assert recorded.scalar_one() == 0


async def test_threshold_and_trailing_window_edges(
    engine: AsyncEngine, owner_engine: AsyncEngine, ladder: Ladder, evaluate: Evaluate
) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0)
    start = trailing_window_start(as_of)
    cases = {
        "gold: 20000 earned 364 days ago": (as_of - timedelta(days=364), 20000, "gold"),
        "silver: 20000 earned 366 days ago": (as_of - timedelta(days=366), 20000, "silver"),
        "silver: exactly 12 months ago": (start, 20000, "silver"),
        "gold: just inside the window": (start + timedelta(microseconds=1), 20000, "gold"),
        "gold: earned at as_of": (as_of, 20000, "gold"),
        "silver: one point short of gold": (as_of - timedelta(days=1), 19999, "silver"),
        "silver: exactly 5000": (as_of - timedelta(days=900), 5000, "silver"),
        "bronze: 4999": (as_of - timedelta(days=1), 4999, "bronze"),
    }
    wallets = {name: SeedWallet("bronze", [(pts, at)]) for name, (at, pts, _) in cases.items()}
    ids = await seed(owner_engine, list(wallets.values()))

    await evaluate(as_of=as_of, downgrade_grace_days=0)

    tiers = await tiers_of(engine, [ids[w.user_id] for w in wallets.values()])
    got = {name: tiers[ids[w.user_id]][0] for name, w in wallets.items()}
    assert got == {name: tier for name, (_, _, tier) in cases.items()}


async def test_downgrade_with_and_without_grace(
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    ladder: Ladder,
    evaluate: Evaluate,
    save_history: SaveHistory,
) -> None:
    t0 = datetime.now(UTC)
    old = t0 - timedelta(days=400)  # lifetime 6000 (silver), nothing in the trailing window
    with_grace = SeedWallet("gold", [(6000, old)])
    requalifies = SeedWallet("gold", [(6000, old)])
    ids = await seed(owner_engine, [with_grace, requalifies])
    graced, requal = ids[with_grace.user_id], ids[requalifies.user_id]

    _, into_grace = await evaluate(as_of=t0, downgrade_grace_days=30)
    assert await tiers_of(engine, [graced, requal]) == {graced: ("gold", t0), requal: ("gold", t0)}
    await save_history("downgrade_into_grace", into_grace.id)

    # Re-qualifying inside the grace period cancels the pending downgrade (a backdated earn:
    # written by the owner, as `seed` does).
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account, "
                "idempotency_key, request_hash, created_at) VALUES "
                "(:w, 'earn', 20000, 'issuance:base', :k, 'seed', :at)"
            ),
            {"w": requal, "k": f"seed:{requal}:requalify", "at": t0 + timedelta(days=10)},
        )
        await open_lots_of_seeded_earns(conn, [f"seed:{requal}:requalify"])
        await conn.execute(
            text(
                "UPDATE wallets SET balance = balance + 20000, "
                "lifetime_points = lifetime_points + 20000 WHERE wallet_id = :w"
            ),
            {"w": requal},
        )

    await evaluate(as_of=t0 + GRACE - timedelta(seconds=1), downgrade_grace_days=30)
    assert await tiers_of(engine, [graced, requal]) == {
        graced: ("gold", t0),
        requal: ("gold", None),
    }

    due, after_grace = await evaluate(as_of=t0 + GRACE, downgrade_grace_days=30)
    assert await tiers_of(engine, [graced, requal]) == {
        graced: ("silver", None),
        requal: ("gold", None),
    }
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT evaluation_id, from_tier, to_tier, direction FROM tier_history "
                    "WHERE wallet_id = :w"
                ),
                {"w": graced},
            )
        ).all()
        note = (
            await conn.execute(
                text("SELECT kind, payload FROM notification_outbox WHERE idempotency_key = :k"),
                {"k": notification_key(graced, due.progress.evaluation_id, "silver")},
            )
        ).one()
    assert [tuple(r) for r in rows] == [(due.progress.evaluation_id, "gold", "silver", "downgrade")]
    assert note[0] == "tier_changed" and note[1]["direction"] == "downgrade"
    await save_history("downgrade_after_grace", after_grace.id)

    # Without grace the same shortfall drops the wallet at the first evaluation.
    no_grace = SeedWallet("gold", [(6000, old)])
    ids = await seed(owner_engine, [no_grace])
    await evaluate(as_of=t0, downgrade_grace_days=0)
    assert await tiers_of(engine, [ids[no_grace.user_id]]) == {
        ids[no_grace.user_id]: ("silver", None)
    }
