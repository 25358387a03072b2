"""What valuing every ledger row costs PostgreSQL: earns posted with the value trigger off and on.

    .venv/bin/python bench/value_trigger.py [--postings 5000] [--rounds 5]

Migration 0013's BEFORE INSERT trigger on wallet_transactions (`wallet_transactions_value`)
values every row as it is inserted. This posts `--postings` one-point earns in one statement
(`generate_series` x `ledger_earn`, one wallet each, so no row is updated twice in a transaction)
with the trigger disabled and enabled, for base earns and for earns issued under a campaign
with its own rate (the trigger's longer path: it reads the earn's rule trace and the campaign),
in alternating order, `--rounds` times, and prints the CPU time the PostgreSQL backend spent per
posting (from /proc/<pid>/schedstat: time on a CPU, so other tenants of a shared machine, which
stretch the wall time, count little) and its wall time, with the trigger's share. One statement
per measurement: no client, network or pool in the figures, only the posting functions as
PostgreSQL runs them. Embedded PostgreSQL in a temporary directory,
owned by this run (the value columns' NOT NULL is dropped so rows posted without the trigger fit).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench import kit
from loyalty.core import db

CAMPAIGN = "bench-valued"
CAMPAIGN_TRACE = json.dumps(
    {
        "rule": "campaign",
        "rules": [
            {"rule": "base", "points": 1, "detail": "bench"},
            {"rule": f"campaign:{CAMPAIGN}", "points": 1, "detail": "bench"},
        ],
    }
)
KINDS = {"base earn": "issuance:base", "campaign earn": "issuance:campaign"}
POST = text(
    "SELECT count(*) FROM generate_series(1, :n) AS g, LATERAL ledger_earn("
    "p_user_id => 'vt-' || g, p_points => 1, p_idempotency_key => :prefix || g, "
    "p_request_hash => 'bench', p_counter_account => :account, "
    "p_metadata => CAST(:trace AS jsonb)) AS posted"
)


async def prepare(conn: AsyncConnection, postings: int) -> None:
    await conn.execute(
        text(
            "ALTER TABLE wallet_transactions ALTER COLUMN value_amount DROP NOT NULL, "
            "ALTER COLUMN value_rate DROP NOT NULL, ALTER COLUMN value_currency DROP NOT NULL, "
            "ALTER COLUMN rate_id DROP NOT NULL"
        )
    )
    await conn.execute(
        text(
            "INSERT INTO campaigns (campaign_id, name, kind, multiplier_pct, starts_at, ends_at, "
            "point_value_minor) VALUES (:c, 'bench', 'multiplier', 200, now(), "
            "now() + interval '1 day', 2.5)"
        ),
        {"c": CAMPAIGN},
    )
    await conn.execute(
        text("SELECT count(ledger_wallet('vt-' || g, true)) FROM generate_series(1, :n) AS g"),
        {"n": postings},
    )


def on_cpu(pid: int) -> float:
    """Seconds the process has run on a CPU (the scheduler's own count, in nanoseconds)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def timed(
    conn: AsyncConnection, backend: int, postings: int, kind: str, trigger: str
) -> tuple[float, float]:
    """CPU and wall seconds per posting, one statement of `postings` earns."""
    verb = "ENABLE" if trigger == "on" else "DISABLE"
    await conn.execute(
        text(f"ALTER TABLE wallet_transactions {verb} TRIGGER wallet_transactions_value")
    )
    params = {
        "n": postings,
        "prefix": f"vt:{uuid.uuid4().hex[:8]}:",
        "account": KINDS[kind],
        "trace": CAMPAIGN_TRACE if kind == "campaign earn" else "{}",
    }
    cpu, started = on_cpu(backend), time.perf_counter()
    posted = (await conn.execute(POST, params)).scalar_one()
    elapsed, used = time.perf_counter() - started, on_cpu(backend) - cpu
    assert posted == postings
    return used / postings, elapsed / postings


async def measure(url: str, postings: int, rounds: int) -> None:
    engine = db.make_engine(url, pool_size=1)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await prepare(conn, postings)
            await timed(conn, backend, postings, "base earn", "on")  # warm caches and plans
            for round_ in range(rounds):
                order = [(k, t) for k in KINDS for t in ("off", "on")]
                for kind, trigger in order if round_ % 2 == 0 else order[::-1]:
                    per = await timed(conn, backend, postings, kind, trigger)
                    results.setdefault((kind, trigger), []).append(per)
            unvalued = (
                await conn.execute(
                    text("SELECT count(*) FROM wallet_transactions WHERE value_amount IS NULL")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    kit.header(
        "value trigger benchmark",
        f"{postings} one-point earns per statement, {rounds} rounds, alternating order",
    )
    rows = []
    for kind in KINDS:
        for index, measure_ in enumerate(("CPU", "wall")):
            runs = {t: [x[index] * 1e6 for x in results[(kind, t)]] for t in ("off", "on")}
            off, on = (statistics.median(runs[t]) for t in ("off", "on"))
            rows.append(
                [
                    f"{kind}, {measure_}",
                    f"{off:.1f}",
                    f"{on:.1f}",
                    f"{on - off:+.1f}",
                    f"{on / off - 1:+.1%}",
                ]
            )
            listed = {t: " ".join(f"{x:.1f}" for x in runs[t]) for t in runs}
            print(f"  {kind}, {measure_}: off {listed['off']} | on {listed['on']} (us per posting)")
    kit.table(["posting, us per posting", "off", "on", "trigger", "trigger share"], rows)
    print(f"rows posted with the trigger off (no value): {unvalued}; medians of the rounds")


def main() -> int:
    parser = kit.parser(__doc__)
    parser.add_argument("--postings", type=int, default=5000, help="earns per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    args = parser.parse_args()
    if not 1 <= args.postings <= 1_000_000 or not 1 <= args.rounds <= 100:
        parser.error("use 1..1000000 postings and 1..100 rounds")
    with kit.workdir("value-trigger", keep=args.keep) as root, kit.Stack(root) as stack:
        stack.postgres()
        asyncio.run(measure(stack.owner_url, args.postings, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
