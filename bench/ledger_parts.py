"""Where a module posting's client CPU goes: the parts of one `ledger.earn` in `db.autocommit`
(bench/ledger.py's module phase), each measured alone in one run, with raw asyncpg sending the
same call (a pool of its own, no SQLAlchemy) as the same-run baseline.

    .venv/bin/python bench/ledger_parts.py [--postings 4000] [--clients 4] [--rounds 2]

Prints CPU microseconds of this process per operation (time.process_time; the server's share is
not in it) for:
- the pool checkout and return (`engine.connect()`),
- the autocommit connection alone (`loyalty.core.db.autocommit`: checkout, isolation level,
  return),
- that connection with the posting function's call sent through SQLAlchemy (`ledger_earn`, the
  same parameters as `ledger.earn` sends, its row read as a mapping),
- `ledger.earn` in that connection (its request hash and result objects on top),
- raw asyncpg: a pool of its own and the same call.
The posting is one call and one round trip every way, so the differences are Python: what
SQLAlchemy's pool and connection add, and what the ledger's own wrapper adds.
Starts embedded PostgreSQL in a temporary directory and deletes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import kit
from loyalty import ledger
from loyalty.core import db, event_loop
from loyalty.core.hashing import request_hash

Part = Callable[[int, str, int], Awaitable[object]]  # (client, run tag, n)

# The call ledger.earn makes, by name (the function's parameters are p_<name>).
EARN_ARGS = (
    "user_id",
    "points",
    "idempotency_key",
    "request_hash",
    "booking_id",
    "payment_id",
    "currency_amount",
    "currency",
    "counter_account",
    "description",
    "metadata",
)


def _call(placeholder: Callable[[int, str], str]) -> str:
    named = ", ".join(f"p_{a} => {placeholder(i, a)}" for i, a in enumerate(EARN_ARGS, 1))
    return f"SELECT * FROM ledger_earn({named})"


EARN = text(_call(lambda i, a: f":{a}"))
EARN_RAW = _call(lambda i, a: f"${i}")


def _params(user: str, key: str) -> dict[str, Any]:
    """One point for `user`, as ledger.earn fills the call (its request hash included)."""
    request = {
        "type": "earn",
        "user_id": user,
        "points": 1,
        "booking_id": None,
        "payment_id": None,
        "currency_amount": None,
    }
    return {
        **dict.fromkeys(EARN_ARGS),
        "user_id": user,
        "points": 1,
        "idempotency_key": key,
        "request_hash": request_hash(request),
        "counter_account": "issuance:base",
        "metadata": "{}",
    }


async def measure(url: str, postings: int, clients: int, rounds: int) -> None:
    engine = db.make_engine(url, pool_size=clients)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(plain, min_size=clients, max_size=clients)
    run_id = uuid.uuid4().hex[:8]
    users = [f"parts-{run_id}-{i}" for i in range(clients)]
    async with db.transaction(engine) as conn:
        for user in users:
            await ledger.open_wallet(conn, user)

    async def checkout(i: int, tag: str, n: int) -> None:
        async with engine.connect():
            pass

    async def autocommit(i: int, tag: str, n: int) -> None:
        async with db.autocommit(engine):
            pass

    async def with_call(i: int, tag: str, n: int) -> None:
        async with db.autocommit(engine) as conn:
            (await conn.execute(EARN, _params(users[i], f"{tag}:{i}:{n}"))).mappings().one()

    async def earn(i: int, tag: str, n: int) -> None:
        async with db.autocommit(engine) as conn:
            await ledger.earn(conn, user_id=users[i], points=1, idempotency_key=f"{tag}:{i}:{n}")

    async def raw_asyncpg(i: int, tag: str, n: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetchrow(EARN_RAW, *_params(users[i], f"{tag}:{i}:{n}").values())

    parts: list[tuple[str, Part]] = [
        ("pool checkout and return", checkout),
        ("autocommit connection alone", autocommit),
        ("autocommit + the call (SQLAlchemy)", with_call),
        ("ledger.earn (module phase)", earn),
        ("raw asyncpg: pool and the call", raw_asyncpg),
    ]
    used: dict[str, list[float]] = {name: [] for name, _ in parts}
    try:
        for round_ in range(rounds):
            for name, part in parts:
                tag = f"bench:{run_id}:{round_}:{name.split()[0]}"

                async def client(i: int, part: Part = part, tag: str = tag) -> None:
                    for n in range(postings // clients):
                        await part(i, tag, n)

                started = time.process_time()
                await asyncio.gather(*(client(i) for i in range(clients)))
                used[name].append((time.process_time() - started) / postings * 1e6)
    finally:
        await pool.close()
        await engine.dispose()
    kit.header(
        "ledger parts",
        f"{postings} operations per part, {clients} concurrent clients, {rounds} round(s)",
        f"CPU of this process per operation, event loop {event_loop.chosen()}",
    )
    rounds_ = [f"round {r + 1} us" for r in range(rounds)]
    kit.table(["part", *rounds_], [[n, *(f"{us:.1f}" for us in u)] for n, u in used.items()])


def main() -> int:
    parser = kit.parser(__doc__)
    parser.add_argument("--postings", type=int, default=4000, help="operations per part")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args: argparse.Namespace = parser.parse_args()
    with kit.workdir("parts", keep=args.keep) as root, kit.Stack(root) as stack:
        url = stack.postgres("loyalty_parts")
        event_loop.run(measure(db.async_url(url), args.postings, args.clients, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
