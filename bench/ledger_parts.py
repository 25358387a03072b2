"""Where a module posting's client CPU goes: the parts of one `ledger.earn` transaction, each
measured alone in one run, with raw asyncpg (its own pool, transaction and the same statement)
as the same-run baseline.

    .venv/bin/python bench/ledger_parts.py [--postings 4000] [--clients 4] [--rounds 2]

Prints CPU microseconds of this process per operation (time.process_time; the server's share is
not in it) for:
- the pool checkout and return (`engine.connect()`),
- the service's transaction alone (`loyalty.core.db.begin`: checkout, BEGIN, COMMIT, return),
- that transaction with the one-statement posting sent through `loyalty.core.db.fetchrow`,
- `ledger.earn` in that transaction (what bench/ledger.py's module phase runs),
- raw asyncpg: a pool of its own, a transaction and the same statement.
Starts embedded PostgreSQL in a temporary directory and deletes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

import devstack
from loyalty import ledger
from loyalty.core import db, event_loop

Part = Callable[[int, str, int], Awaitable[None]]  # (client, run tag, n)


def _params(user: str, key: str) -> dict[str, object]:
    """The one-statement posting's parameters, as ledger.earn fills them for one point."""
    return {
        "booking_id": None,
        "payment_id": None,
        "currency_amount": None,
        "currency": None,
        "description": None,
        "user_id": user,
        "type": "earn",
        "amount": 1,
        "lifetime_delta": 1,
        "counter_account": "issuance:base",
        "reverses": None,
        "key": key,
        "hash": ledger.request_hash({"key": key}),
        "metadata": "{}",
    }


async def measure(url: str, postings: int, clients: int, rounds: int) -> None:
    engine = db.make_engine(url, pool_size=clients)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(plain, min_size=clients, max_size=clients)
    run_id = uuid.uuid4().hex[:8]
    users = [f"parts-{run_id}-{i}" for i in range(clients)]
    async with engine.begin() as conn:
        for user in users:
            await ledger.open_wallet(conn, user)
    statement = ledger._POST_BY_USER

    async def checkout(i: int, tag: str, n: int) -> None:
        async with engine.connect():
            pass

    async def transaction(i: int, tag: str, n: int) -> None:
        async with db.begin(engine) as conn:
            await db._driver(conn)  # begins it, as a statement would

    async def with_statement(i: int, tag: str, n: int) -> None:
        async with db.begin(engine) as conn:
            await db.fetchrow(conn, statement, _params(users[i], f"{tag}:{i}:{n}"))

    async def earn(i: int, tag: str, n: int) -> None:
        async with db.begin(engine) as conn:
            await ledger.earn(conn, user_id=users[i], points=1, idempotency_key=f"{tag}:{i}:{n}")

    async def raw_asyncpg(i: int, tag: str, n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            params = _params(users[i], f"{tag}:{i}:{n}")
            await conn.fetchrow(statement.sql, *statement.args(params))

    parts: list[tuple[str, Part]] = [
        ("pool checkout and return", checkout),
        ("transaction alone (db.begin)", transaction),
        ("transaction + statement", with_statement),
        ("ledger.earn (module phase)", earn),
        ("raw asyncpg: pool, tx, statement", raw_asyncpg),
    ]
    try:
        print(f"{postings} operations per part, {clients} concurrent clients, CPU of this process")
        for round_ in range(rounds):
            for name, part in parts:
                tag = f"bench:{run_id}:{round_}:{name.split()[0]}"

                async def client(i: int, part: Part = part, tag: str = tag) -> None:
                    for n in range(postings // clients):
                        await part(i, tag, n)

                started = time.process_time()
                await asyncio.gather(*(client(i) for i in range(clients)))
                used = time.process_time() - started
                print(f"  round {round_ + 1}  {name:34} {used / postings * 1e6:7.1f} us")
    finally:
        await pool.close()
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=4000, help="operations per part")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="loyalty-bench-parts-"))
    pg = devstack.EmbeddedPostgres(workdir / "pg", delete_on_stop=True)
    try:
        url = pg.ensure_database("loyalty_parts")
        devstack.run_migrations(url)
        event_loop.run(measure(db.async_url(url), args.postings, args.clients, args.rounds))
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
