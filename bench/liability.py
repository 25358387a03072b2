"""The liability report on a large ledger, against the bare SQL aggregates giving the same
totals, measured in one run.

    .venv/bin/python bench/liability.py [--wallets 1000000] [--transactions 10000000]
        [--rounds 3] [--past-days 45]

1. Starts embedded PostgreSQL in a temporary directory (deleted at the end), migrates, and seeds
   the ledger in bulk as the owner (bench/seed_ledger.py: earns spread over 700 days, each
   opening a lot, a share of them due, and a burn drawn from a wallet's first lot; here with
   the secondary indexes and foreign keys dropped while the rows go in and restored after, which
   is several times faster), then checks every ledger invariant (loyalty.ledger.invariants,
   the report's own check included).
2. For the report of now and of `--past-days` ago, alternately, `--rounds` times each:
   - the report: loyalty.ledger.liability.liability_report through the service's engine (one
     statement; what GET /reports/liability runs, without the HTTP around it);
   - the bare aggregates: the plain SQL a DBA would write for the same totals, straight on
     asyncpg: the ledger summed by counter account up to the moment, each lot's points plus its
     movements up to the moment (of now: the lots' `remaining`), the pending accruals.
   It checks both give the same figures and prints the medians and the report's speed as a
   share of the bare aggregates' (bare seconds / report seconds; the target is at least 50%).

With DATABASE_URL set it uses that database instead (it must be empty and migrated; never point
it at production).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text

from bench import kit, seed_ledger
from loyalty.core import db, event_loop
from loyalty.ledger import liability
from loyalty.ledger.invariants import find_violations

VALUATION = liability.Valuation("VND", 1)


def _windows(moment: str) -> str:
    """The lots' figures as of `moment` (an SQL expression), over `rem` and `expires_at`."""
    within = ", ".join(
        f"SUM(rem) FILTER (WHERE expires_at <= {moment} + interval '{d} days') AS d{d}"
        for d in liability.EXPIRY_WINDOWS_DAYS
    )
    return (
        f"SUM(rem) FILTER (WHERE expires_at <= {moment}) AS overdue, {within}, "
        "SUM(rem) FILTER (WHERE expires_at IS NULL) AS never, SUM(rem) AS in_lots"
    )


_LEDGER = """SELECT counter_account, SUM(amount) FILTER (WHERE amount > 0) AS credited,
       -SUM(amount) FILTER (WHERE amount < 0) AS debited, SUM(held_delta) AS held
    FROM wallet_transactions {where} GROUP BY counter_account"""
BARE_NOW = [
    _LEDGER.format(where=""),
    # Windows from $1: the report's own now (lots fall due every few seconds here).
    f"SELECT {_windows('$1')} FROM (SELECT expires_at, remaining AS rem FROM point_lots) x",
    "SELECT SUM(pending_points) FROM booking_accruals WHERE status = 'pending'",
]
BARE_AS_OF = [
    _LEDGER.format(where="WHERE created_at <= $1"),
    f"""SELECT {_windows("$1")} FROM (
           SELECT l.expires_at, l.points + COALESCE(SUM(m.points), 0) AS rem
           FROM point_lots l LEFT JOIN lot_movements m
               ON m.lot_id = l.lot_id AND m.created_at <= $1
           WHERE l.created_at <= $1 GROUP BY l.lot_id) x""",
    """SELECT SUM(CASE WHEN a.status <> 'posted' THEN a.pending_points
                    WHEN e.created_at > $1 THEN e.amount ELSE 0 END
                + COALESCE((SELECT SUM(r.pending_reduced) FROM booking_refunds r
                            WHERE r.booking_id = a.booking_id AND r.created_at > $1), 0))
       FROM booking_accruals a LEFT JOIN wallet_transactions e ON e.tx_id = a.earn_tx_id
       WHERE a.created_at <= $1""",
]


# Secondary indexes and foreign keys of the seeded tables: dropped while the rows go in, then
# built again (one sort each) and validated (one join each) instead of row by row.
_INDEXES = """
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"""
_KEYS = """
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
    WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
      AND c.conrelid::regclass::text = ANY(:tables)"""


async def seed(owner_url: str, wallets: int, transactions: int) -> seed_ledger.Seeded:
    engine = db.make_engine(owner_url, pool_size=1)
    tables = list(seed_ledger.TABLES)
    try:
        async with db.transaction(engine) as conn:
            await conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            indexes = (await conn.execute(text(_INDEXES), {"tables": tables})).all()
            keys = (await conn.execute(text(_KEYS), {"tables": tables})).all()
            for name, _ in indexes:
                await conn.execute(text(f'DROP INDEX "{name}"'))
            for table, name, _ in keys:
                await conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            seeded = await seed_ledger.seed(conn, wallets=wallets, transactions=transactions)
            for _, definition in indexes:
                await conn.execute(text(definition))
            for table, name, definition in keys:
                add = f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
                await conn.execute(text(add))
        async with db.autocommit(engine) as conn:
            await seed_ledger.analyze(conn)
    finally:
        await engine.dispose()
    return seeded


def _say(message: str) -> None:
    print(message, flush=True)


def _figures_of(report: liability.LiabilityReport) -> dict[str, Any]:
    return {
        "accounts": {
            a.counter_account: (a.credited_points, a.debited_points) for a in report.accounts
        },
        "held": report.held.points,
        "expiring": {name: figure.points for name, figure in report.expiring},
        "pending": report.pending.points,
    }


async def bare(
    conn: asyncpg.Connection, as_of: datetime | None, now: datetime
) -> tuple[dict[str, Any], float]:
    """The bare aggregates' figures, and their seconds (three statements); of now (`as_of`
    None) with the expiry windows counted from `now`."""
    statements, params = (BARE_NOW, []) if as_of is None else (BARE_AS_OF, [as_of])
    started = time.perf_counter()
    ledger = await conn.fetch(statements[0], *params)
    lots = await conn.fetchrow(statements[1], as_of or now)
    pending = await conn.fetchval(statements[2], *params)
    seconds = time.perf_counter() - started
    figures = {
        "accounts": {r["counter_account"]: (r["credited"] or 0, r["debited"] or 0) for r in ledger},
        "held": sum(r["held"] for r in ledger),
        "expiring": {
            "overdue": lots["overdue"] or 0,
            **{f"within_{d}_days": lots[f"d{d}"] or 0 for d in liability.EXPIRY_WINDOWS_DAYS},
            "never": lots["never"] or 0,
            "in_lots": lots["in_lots"] or 0,
        },
        "pending": pending or 0,
    }
    return figures, seconds


async def report(engine: Any, as_of: datetime | None) -> tuple[dict[str, Any], float, datetime]:
    started = time.perf_counter()
    async with engine.connect() as conn:
        found = await liability.liability_report(conn, VALUATION, as_of)
    return _figures_of(found), time.perf_counter() - started, found.as_of


async def measure(args: argparse.Namespace, stack: kit.Stack, url: str) -> int:
    kit.header(
        "liability report benchmark",
        f"{args.wallets:,} wallets, {args.transactions:,} ledger rows, {args.rounds} rounds, "
        f"as of now and {args.past_days} days ago",
    )
    _say(f"seeding {args.transactions:,} rows over {args.wallets:,} wallets ...")
    seeded = await seed(stack.owner_url, args.wallets, args.transactions)
    _say(f"  seeded {seeded.line()}; indexes and keys restored, analyzed")
    engine = db.make_engine(url, pool_size=2)
    raw = await asyncpg.connect(db.async_url(url).replace("postgresql+asyncpg", "postgresql"))
    ok = True
    try:
        if not args.skip_invariants:
            started = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                violations = await find_violations(conn, limit=5)
            took = time.perf_counter() - started
            _say(f"invariants after seeding: {violations if violations else 'OK'} ({took:.1f} s)")
            ok = not violations
        past = datetime.now(UTC) - timedelta(days=args.past_days)
        rows = []
        for label, as_of in (("now", None), (f"{args.past_days} days ago", past)):
            timings: dict[str, list[float]] = {"report": [], "bare": []}
            for _ in range(args.rounds):
                ours, ours_s, moment = await report(engine, as_of)
                theirs, bare_s = await bare(raw, as_of, moment)
                timings["report"].append(ours_s)
                timings["bare"].append(bare_s)
                if ours != theirs:
                    ok = False
                    _say(f"  {label}: figures differ:\n    report {ours}\n    bare   {theirs}")
            report_s, bare_s = (statistics.median(timings[k]) for k in ("report", "bare"))
            rows.append(
                (label, f"{report_s * 1000:,.0f}", f"{bare_s * 1000:,.0f}",
                 f"{bare_s / report_s:.0%}")
            )  # fmt: skip
            _say(f"  {label}: outstanding {sum(c - d for c, d in ours['accounts'].values()):,}")
        _say("")
        kit.table(("as of", "report ms", "bare SQL ms", "share"), rows)
        _say(f"figures match: {'yes' if ok else 'NO'}")
    finally:
        await raw.close()
        await engine.dispose()
    return 0 if ok else 1


def main() -> None:
    parser = kit.parser(__doc__)
    parser.add_argument("--wallets", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--past-days", type=int, default=45)
    parser.add_argument("--skip-invariants", action="store_true")
    args = parser.parse_args()
    with kit.workdir("liability", keep=args.keep) as root, kit.Stack(root) as stack:
        url = stack.postgres(from_env=True)
        status = event_loop.run(measure(args, stack, url))
    kit.finish(status)


if __name__ == "__main__":
    main()
