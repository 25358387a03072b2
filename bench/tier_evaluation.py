"""Tier evaluation of many wallets through a real worker, against the bare SQL doing the same
classification, measured in one run.

    .venv/bin/python bench/tier_evaluation.py [--wallets 1000000] [--earns 3] [--batch-size 2000]

1. Starts embedded PostgreSQL in a temporary directory (deleted at the end) and a headless
   in-memory Temporal dev server, migrates, and seeds N wallets with E backdated earns each in
   a few generate_series statements (amounts and ages spread over two years, starting tiers
   mixed, a pending downgrade on some, so the first evaluation upgrades, downgrades and starts
   grace periods). Gold counts the trailing 12
   months, silver lifetime points, so both bases are exercised.
2. Baseline: one read-only statement classifying every wallet
   (loyalty.tiers.evaluation.classify_all, the same SQL fragment the batches use), timed.
3. Starts `python worker.py` as its own process (as in production), runs TierEvaluationWorkflow
   twice: a first evaluation that moves many wallets, then a steady-state one that moves none.
   It prints wallets evaluated per second, checks the first run's counts equal the baseline's,
   and reports the worker's resident memory at start and at its peak (VmHWM from /proc).

With DATABASE_URL set it uses that database instead (writes `bench-*` wallets into it; never
point it at production). TEMPORAL_ADDRESS likewise.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from bench import kit
from loyalty.core import db, event_loop
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.temporal import connect
from loyalty.tiers import evaluation as tier_evaluation
from loyalty.tiers import store as tier_store
from loyalty.tiers.contracts import (
    WORKFLOW_NAME,
    TierEvaluationInput,
    TierEvaluationProgress,
    TierEvaluationResult,
)

GRACE_DAYS = 30
SEED = [
    "UPDATE loyalty_tiers SET basis = 'trailing_12m' WHERE code = 'gold'",
    """CREATE UNLOGGED TABLE bench_seed AS
       SELECT i, j,
              1 + (hashint8(i * 16 + j) & 2147483647) % 9000 AS amount,
              now() - make_interval(secs => (hashint8(i * 16 + j + 7) & 2147483647)
                                            % (730 * 86400)) AS created_at
       FROM generate_series(1, :n) AS i, generate_series(1, :e) AS j""",
    """INSERT INTO wallets (user_id, tier, balance, lifetime_points)
       SELECT 'bench-' || i, (ARRAY['bronze', 'silver', 'gold'])[1 + i % 3],
              sum(amount), sum(amount)
       FROM bench_seed GROUP BY i""",
    """INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account,
                                       idempotency_key, request_hash, description, created_at)
       SELECT w.wallet_id, 'earn', s.amount, 'issuance:base', 'bench:' || s.i || ':' || s.j,
              'bench', 'bench seed', s.created_at
       FROM bench_seed s JOIN wallets w ON w.user_id = 'bench-' || s.i""",
    "DROP TABLE bench_seed",
    # Every fifth wallet was found short 40 days ago: past the grace if it still is.
    """INSERT INTO wallet_tier_status (wallet_id, downgrade_pending_since, downgrade_to)
       SELECT wallet_id, now() - interval '40 days', 'bronze' FROM wallets
       WHERE user_id LIKE 'bench-%' AND (hashint8(lifetime_points) & 7) < 2""",
]


def _proc_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _say(message: str) -> None:
    print(message, flush=True)


async def seed(url: str, wallets: int, earns: int) -> float:
    engine = db.make_engine(url)
    started = time.perf_counter()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            for statement in SEED:
                await conn.execute(text(statement), {"n": wallets, "e": earns})
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE wallets"))
            await conn.execute(text("VACUUM ANALYZE wallet_transactions"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def baseline(url: str, as_of: datetime) -> tuple[tier_evaluation.Classification, float]:
    engine = db.make_engine(url)
    try:
        async with engine.connect() as conn:
            ladder = await tier_store.load_ladder(conn)
            started = time.perf_counter()
            found = await tier_evaluation.classify_all(
                conn, ladder, as_of, timedelta(days=GRACE_DAYS)
            )
            return found, time.perf_counter() - started
    finally:
        await engine.dispose()


async def evaluate(
    settings: Settings, worker_pid: int, inp: TierEvaluationInput, label: str
) -> tuple[TierEvaluationProgress, float]:
    """One evaluation, started by the workflow's type name as the schedule starts it; its
    progress every 5 s, its final progress and how long it took."""
    client = await connect(settings)
    started = time.perf_counter()
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        inp,
        id=f"tier-evaluation-bench-{label}-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
        result_type=TierEvaluationResult,
    )
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        await asyncio.wait([result], timeout=5)
        if not result.done():
            progress = await handle.query("progress")  # None until the ladder is loaded
            rss = _proc_kib(worker_pid, "VmRSS") // 1024
            if progress is not None:
                line = TierEvaluationProgress.model_validate(progress).line()
                _say(f"  [{label}] {line}; worker RSS {rss} MiB")
    return result.result().progress, time.perf_counter() - started


async def measure(args: argparse.Namespace, stack: kit.Stack, url: str, address: str) -> int:
    settings, env = kit.settings_and_env(
        environment="development",
        database_url=url,
        temporal_address=address,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        tier_evaluation_batch_size=args.batch_size,
    )
    kit.header(
        "tier evaluation benchmark",
        f"{args.wallets:,} wallets with {args.earns} backdated earns each, batch size "
        f"{args.batch_size}, downgrade grace {GRACE_DAYS} days",
    )
    _say(f"seeding {args.wallets:,} wallets ...")
    # Backdated ledger rows: the owner's to write (the service's role may not).
    seconds = await seed(stack.owner_url, args.wallets, args.earns)
    _say(f"  seeded in {seconds:.1f} s")

    as_of = datetime.now(UTC)
    expected, base_seconds = await baseline(url, as_of)
    base_rate = expected.evaluated / base_seconds
    _say(
        f"baseline (one SQL statement, read-only): {expected.evaluated:,} wallets in "
        f"{base_seconds:.1f} s = {base_rate:,.0f} wallets/s; would move "
        f"{expected.upgraded:,} up, {expected.downgraded:,} down, {expected.in_grace:,} in grace"
    )

    # As in production: `python worker.py`, a process of its own (stopped with the stack).
    worker = stack.worker("worker", [str(PROJECT_ROOT / "worker.py")], env).pid
    idle_kib = _proc_kib(worker, "VmRSS")
    _say(f"worker started (pid {worker}, RSS {idle_kib // 1024} MiB)")
    inp = TierEvaluationInput(
        batch_size=args.batch_size, downgrade_grace_days=GRACE_DAYS, as_of=as_of
    )
    first, first_seconds = await evaluate(settings, worker, inp, "first")
    again, again_seconds = await evaluate(settings, worker, inp, "again")
    peak_kib = _proc_kib(worker, "VmHWM")

    ok = (first.upgraded, first.downgraded, first.downgrades_in_grace) == (
        expected.upgraded,
        expected.downgraded,
        expected.in_grace,
    ) and (again.upgraded, again.downgraded) == (0, 0)
    first_rate = first.wallets_evaluated / first_seconds
    again_rate = again.wallets_evaluated / again_seconds
    _say("")
    _say(f"wallets:                 {first.wallets_evaluated:,} (batch size {args.batch_size})")
    _say(
        f"first evaluation:        {first_seconds:.1f} s = {first_rate:,.0f} wallets/s "
        f"({first.upgraded:,} up, {first.downgraded:,} down, "
        f"{first.downgrades_in_grace:,} in grace; {first.batches} batches, {first.runs} runs)"
    )
    _say(
        f"second (steady state):   {again_seconds:.1f} s = {again_rate:,.0f} wallets/s "
        f"({again.upgraded + again.downgraded} changes)"
    )
    _say(f"baseline SQL:            {base_seconds:.1f} s = {base_rate:,.0f} wallets/s")
    _say(
        f"workflow / baseline:     {first_rate / base_rate:.2f} (first), "
        f"{again_rate / base_rate:.2f} (steady state)"
    )
    _say(f"worker memory:           {idle_kib // 1024} MiB at start, {peak_kib // 1024} MiB peak")
    _say(f"counts match baseline:   {'yes' if ok else 'NO'}")
    return 0 if ok else 1


def main() -> None:
    parser = kit.parser(__doc__)
    parser.add_argument("--wallets", type=int, default=1_000_000)
    parser.add_argument("--earns", type=int, default=3, help="backdated earns per wallet")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    with kit.workdir("tiers", keep=args.keep) as root, kit.Stack(root) as stack:
        url = stack.postgres(from_env=True)
        address = stack.temporal(from_env=True)
        status = event_loop.run(measure(args, stack, url, address))
    kit.finish(status)


if __name__ == "__main__":
    main()
