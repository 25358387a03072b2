"""The ledger's posting rate with point lots against the same ledger without them, in one run.

    .venv/bin/python bench/lots.py [--wallets 1000000] [--transactions 10000000]
                                   [--clients 8] [--seconds 10] [--rounds 2] [--with 0012]

1. Starts embedded PostgreSQL in a temporary directory (deleted at the end) with two service
   databases: `lots_off` at migration 0011 (the posting functions before lots) and `lots_on` at
   `--with` (0012: the same with lots and nothing else; `head` measures everything since).
   `lots_off` is seeded with `--wallets` wallets and `--transactions` backdated earns among them
   (a few generate_series statements at 0011), `lots_on` is a copy of it (CREATE DATABASE ...
   TEMPLATE) migrated on, which opens each wallet's lot as migration 0012 does in production.
2. Alternates the two databases, `--rounds` times each, for `--seconds` each: `--clients`
   asyncio tasks, each on seeded wallets of its own, post a checkout-like mix through
   loyalty.ledger in db.autocommit (one call, one round trip per posting): earn 100, hold 60,
   capture (or release, every other time), burn 30, refund 30 of it, clawback 10. Postings that
   make points available open or refill lots, the others draw from them: every lot path runs.
3. Prints postings per second per round and per database, and the share: lots on / lots off
   (target at least 80%), then checks the invariants of the ledger with lots.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import devstack
from bench import kit
from loyalty import ledger
from loyalty.core import db, event_loop
from loyalty.ledger.invariants import CHECKS, find_violations

TARGET = 0.80
BEFORE_LOTS = "0011"
SEED = [
    """INSERT INTO wallets (user_id, balance, lifetime_points, tier)
       SELECT 'bench-' || i, 0, 0, 'bronze' FROM generate_series(1, :wallets) i""",
    """INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account,
           idempotency_key, request_hash, created_at)
       SELECT w.wallet_id, 'earn', 100 + t % 900, 'issuance:base', 'seed:' || t, 'seed',
              now() - make_interval(days => t % 700)
       FROM generate_series(1, :transactions) t
       JOIN wallets w ON w.user_id = 'bench-' || (1 + t % :wallets)""",
    """UPDATE wallets w SET balance = s.points, lifetime_points = s.points
       FROM (SELECT wallet_id, sum(amount) AS points FROM wallet_transactions
             GROUP BY wallet_id) s
       WHERE s.wallet_id = w.wallet_id""",
    "ANALYZE",
]


async def seed(pg: devstack.EmbeddedPostgres, name: str, wallets: int, transactions: int) -> str:
    """A service database at 0011 with the seeded ledger; the service's URL of it."""
    database = await asyncio.to_thread(pg.service_database, name)
    cfg = devstack.alembic_config(database.owner_url, app_role=database.app_role)
    await asyncio.to_thread(command.downgrade, cfg, BEFORE_LOTS)
    # As the superuser, with the ledger's row triggers (foreign key checks included) off for the
    # bulk insert: the rows are made consistent by construction, and the run checks the
    # invariants at the end.
    engine = db.make_engine(pg.uri(name), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in SEED[:-1]:
                await conn.execute(
                    text(statement), {"wallets": wallets, "transactions": transactions}
                )
        async with db.autocommit(engine) as conn:
            await conn.execute(text(SEED[-1]))
    finally:
        await engine.dispose()
    return database.app_url


async def client(engine: AsyncEngine, user: str, deadline: float, counts: list[int]) -> None:
    """One client's checkout-like mix on its wallet until the deadline."""
    later = datetime.now(UTC) + timedelta(minutes=15)
    for n in itertools.count():
        if time.monotonic() >= deadline:
            return
        key = f"{user}:{uuid.uuid4().hex[:12]}"
        async with db.autocommit(engine) as conn:
            await ledger.earn(conn, user_id=user, points=100, idempotency_key=f"{key}:e")
            held, _ = await ledger.hold(
                conn, user_id=user, points=60, idempotency_key=f"{key}:h", expires_at=later
            )
            resolve = ledger.capture if n % 2 else ledger.release
            await resolve(conn, hold_id=held.hold_id, idempotency_key=f"{key}:r")
            burned = await ledger.burn(
                conn, user_id=user, points=30, idempotency_key=f"{key}:b", counter_account="v"
            )
            await ledger.refund(
                conn, reverses_tx_id=burned.posting.tx_id, points=30, idempotency_key=f"{key}:f"
            )
            await ledger.clawback(conn, user_id=user, points=10, idempotency_key=f"{key}:c")
        counts[0] += 7


async def round_of(url: str, clients: int, seconds: float, wallets: int, offset: int) -> float:
    """Postings per second of `clients` tasks for `seconds`, after a one-second warm-up."""
    engine = db.make_engine(url, pool_size=clients)
    try:
        users = [f"bench-{1 + (offset + i * 7919) % wallets}" for i in range(clients)]
        warm = [0]
        await asyncio.gather(*(client(engine, u, time.monotonic() + 1, warm) for u in users))
        counts = [0]
        start = time.monotonic()
        await asyncio.gather(*(client(engine, u, start + seconds, counts) for u in users))
        return counts[0] / (time.monotonic() - start)
    finally:
        await engine.dispose()


async def invariants(url: str, revision: str) -> list[str]:
    """The ledger's invariants at the head; at an older revision those its schema has (the book
    value came with 0013, the lifetime rule of points kept with 0015)."""
    engine = db.make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if revision == "head":
                return [str(v) for v in await find_violations(conn)]
            found = []
            for name, sql in CHECKS.items():
                if "value" in name or "lifetime" in name:
                    continue
                rows = (await conn.execute(text(f"{sql} LIMIT 5"))).all()
                found += [f"{name}: {tuple(row)}" for row in rows]
            return found
    finally:
        await engine.dispose()


async def measure(pg: devstack.EmbeddedPostgres, args: argparse.Namespace) -> int:
    started = time.monotonic()
    off_url = await seed(pg, "lots_off", args.wallets, args.transactions)
    # The same seeded ledger, copied by the server (no second seed), then migrated on.
    await asyncio.to_thread(pg._server.psql, 'CREATE DATABASE "lots_on" TEMPLATE "lots_off";')
    on_db = await asyncio.to_thread(pg.service_database, "lots_on", migrate=False)
    on_url = on_db.app_url
    cfg = devstack.alembic_config(on_db.owner_url, app_role=on_db.app_role)
    await asyncio.to_thread(command.upgrade, cfg, args.with_)
    print(f"seeded two ledgers in {time.monotonic() - started:.0f} s", flush=True)
    off_name, on_name = f"lots off ({BEFORE_LOTS})", f"lots on ({args.with_})"
    rates: dict[str, list[float]] = {off_name: [], on_name: []}
    for number in range(args.rounds):
        for name, url in ((off_name, off_url), (on_name, on_url)):
            rate = await round_of(url, args.clients, args.seconds, args.wallets, number * 97)
            rates[name].append(rate)
            print(f"  round {number + 1}, {name}: {rate:,.0f} postings/s", flush=True)
    off, on = (sum(r) / len(r) for r in rates.values())
    print()
    kit.header(
        "lots benchmark",
        f"{args.wallets:,} wallets, {args.transactions:,} seeded transactions",
        f"{args.clients} clients, {args.seconds:g} s per round, {args.rounds} round(s) each",
    )
    kit.table(
        ["database", "postings/s", "share of lots off"],
        [
            [off_name, f"{off:,.0f}", "100%"],
            [on_name, f"{on:,.0f}", f"{on / off:.0%}"],
        ],
    )
    verdict = "met" if on / off >= TARGET else "MISSED"
    print(f"target: lots on at least {TARGET:.0%} of lots off: {verdict}")
    found = await invariants(on_url, args.with_)  # the lots-off ledger lacks the lot checks' tables
    print(f"invariants after the run: {'OK' if not found else found[:5]}")
    return 1 if found else 0


def main() -> int:
    parser = kit.parser(__doc__)
    parser.add_argument("--wallets", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--with", dest="with_", default="0012", help="revision of the ledger with lots"
    )
    args = parser.parse_args()
    with kit.workdir("lots", keep=args.keep) as root:
        pg = devstack.EmbeddedPostgres(root / "pg", delete_on_stop=True)
        try:
            return event_loop.run(measure(pg, args))
        finally:
            pg.stop()


if __name__ == "__main__":
    kit.finish(main())
