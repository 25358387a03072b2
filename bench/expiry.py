"""Points expiry over a seeded ledger through a real worker, against the bare SQL statement
that selects the same due lots, measured in one run.

    .venv/bin/python bench/expiry.py [--wallets 1000000] [--transactions 10000000]
        [--due-share 0.03] [--batch-size 1000] [--concurrency 4] [--reminder-days 30]

1. Starts embedded PostgreSQL in a temporary directory (deleted at the end) and a headless
   in-memory Temporal dev server, migrates, and seeds the ledger (bench/seed_ledger.py: N
   wallets, M rows, lots of which a share is due).
2. Baseline: one read-only statement selecting every lot due at `as_of` (the due index, the
   same predicate and order the batches page through), fetched whole, timed; lots and distinct
   wallets per second.
3. Starts `python worker.py` as its own process (as in production) and runs PointsExpiryWorkflow
   at the same `as_of`: its expiry phase as lots and wallets per second, then its reminders;
   checks it expired exactly the baseline's lots, points and wallets, runs it again (nothing
   left to expire), checks the ledger invariants, and reports the worker's resident memory at
   start and at its peak (VmHWM from /proc), sampled every 5 s in between.

With DATABASE_URL (and MIGRATION_DATABASE_URL, the owner's) set it uses that database instead
(writes `<prefix>-*` wallets into it; never point it at production). TEMPORAL_ADDRESS likewise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench import kit, seed_ledger
from loyalty.core import db, event_loop
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.temporal import connect
from loyalty.expiry.contracts import WORKFLOW_NAME, ExpiryInput, ExpiryProgress, ExpiryResult
from loyalty.ledger.invariants import find_violations

BARE = """
    SELECT lot_id, wallet_id, remaining FROM point_lots
    WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $1
    ORDER BY expires_at, lot_id"""


def _say(message: str) -> None:
    print(message, flush=True)


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


async def baseline(url: str, as_of: datetime) -> tuple[int, int, int, float]:
    """Lots, distinct wallets and points the bare statement selects, and its seconds."""
    engine = db.make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            started = time.perf_counter()
            rows = await driver.fetch(BARE, as_of)
            wallets = len({row["wallet_id"] for row in rows})
            seconds = time.perf_counter() - started
            return len(rows), wallets, sum(row["remaining"] for row in rows), seconds
    finally:
        await engine.dispose()


async def run_expiry(
    settings: Settings, worker_pid: int, inp: ExpiryInput, label: str
) -> tuple[ExpiryProgress, float]:
    """One run, started by the workflow's type name as the schedule starts it; its progress
    every 5 s with the worker's memory, its final progress and its wall seconds."""
    client = await connect(settings)
    started = time.perf_counter()
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        inp,
        id=f"points-expiry-bench-{label}-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
        result_type=ExpiryResult,
    )
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        await asyncio.wait([result], timeout=5)
        if not result.done():
            progress = await handle.query("progress")
            rss = _kib(worker_pid, "VmRSS") // 1024
            if progress is not None:
                line = ExpiryProgress.model_validate(progress).line()
                _say(f"  [{label}] {line}; worker RSS {rss} MiB")
    return result.result().progress, time.perf_counter() - started


async def invariants(url: str) -> str:
    engine = db.make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            found = await find_violations(conn)
    finally:
        await engine.dispose()
    return "OK" if not found else f"{len(found)} violation(s), e.g. {found[0]}"


async def measure(args: argparse.Namespace, stack: kit.Stack, url: str, address: str) -> int:
    settings, env = kit.settings_and_env(
        environment="development",
        database_url=url,
        temporal_address=address,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
    )
    kit.header(
        "points expiry benchmark",
        f"{args.wallets:,} wallets, {args.transactions:,} transactions, {args.due_share:.1%} "
        f"of lots due, batch size {args.batch_size}, {args.concurrency} postings in flight, "
        f"reminders {args.reminder_days} days ahead",
    )
    _say("seeding ...")
    seeded = await seed_ledger.seed_database(
        stack.owner_url,
        wallets=args.wallets,
        transactions=args.transactions,
        due_share=args.due_share,
        prefix=args.prefix,
    )
    _say(f"  seeded {seeded.line()}")

    as_of = datetime.now(UTC)
    lots, wallets, points, base_seconds = await baseline(url, as_of)
    _say(
        f"baseline (one SQL statement, read-only): {lots:,} due lots of {wallets:,} wallets "
        f"({points:,} points) in {base_seconds:.2f} s"
    )

    worker = stack.worker("worker", [str(PROJECT_ROOT / "worker.py")], env).pid
    idle_kib = _kib(worker, "VmRSS")
    _say(f"worker started (pid {worker}, RSS {idle_kib // 1024} MiB)")
    inp = ExpiryInput(
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        reminder_days=args.reminder_days,
        as_of=as_of,
    )
    first, first_seconds = await run_expiry(settings, worker, inp, "first")
    again, again_seconds = await run_expiry(settings, worker, inp, "again")
    peak_kib = _kib(worker, "VmHWM")
    checked = "skipped" if args.no_invariants else await invariants(url)

    expiring = first.expiring_seconds or first_seconds
    ok = (
        (first.lots_expired, first.wallets_touched, first.points_expired) == (lots, wallets, points)
        and again.lots_expired == 0
        and again.customers_reminded == 0
        and checked in ("OK", "skipped")
    )
    rate = first.lots_expired / expiring
    wallet_rate = first.wallets_touched / expiring
    base_rate, base_wallet_rate = lots / base_seconds, wallets / base_seconds
    _say("")
    _say(
        f"expiry phase:            {first.lots_expired:,} lots of {first.wallets_touched:,} "
        f"wallets ({first.points_expired:,} points) in {expiring:.1f} s = {rate:,.0f} lots/s, "
        f"{wallet_rate:,.0f} wallets/s ({first.batches} batches, {first.runs} runs)"
    )
    _say(
        f"reminders:               {first.customers_reminded:,} customers, "
        f"{first.lots_reminded:,} lots; whole run {first_seconds:.1f} s"
    )
    _say(f"second run:              {again.lots_expired} lots expired in {again_seconds:.1f} s")
    _say(
        f"baseline SQL:            {base_seconds:.2f} s = {base_rate:,.0f} lots/s, "
        f"{base_wallet_rate:,.0f} wallets/s"
    )
    _say(f"workflow / baseline:     {rate / base_rate:.4f} (lots/s)")
    _say(f"worker memory:           {idle_kib // 1024} MiB at start, {peak_kib // 1024} MiB peak")
    _say(f"invariants after:        {checked}")
    _say(f"counts match baseline:   {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def main() -> None:
    parser = kit.parser(__doc__)
    seed_ledger.add_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="postings in flight")
    parser.add_argument("--reminder-days", type=int, default=30)
    parser.add_argument("--no-invariants", action="store_true", help="skip the check after")
    args = parser.parse_args()
    with kit.workdir("expiry", keep=args.keep) as root, kit.Stack(root) as stack:
        url = stack.postgres(from_env=True)
        address = stack.temporal(from_env=True)
        status = event_loop.run(measure(args, stack, url, address))
    kit.finish(status)


if __name__ == "__main__":
    main()
