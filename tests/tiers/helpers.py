"""Tier-specific seeding and reading for the tier tests: wallets with backdated earns (and a
pending downgrade if asked), every wallet's evaluation recomputed in plain Python from the raw
rows, and the tiers the database holds.

Backdated earns are INSERTed (never UPDATEd) with an explicit created_at, together with
wallets whose balance and lifetime points equal their rows, so the ledger invariants hold.
(The ledger's own postings always stamp now(): tests/harness/wallets.py cannot backdate.)"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import WorkflowHandle

from loyalty.tiers.contracts import TierEvaluationResult
from loyalty.tiers.rules import Decision, Ladder, decide, in_trailing_window
from tests.harness.wallets import open_lots_of_seeded_earns

# Silver on lifetime points, gold on the trailing 12 months: both bases in every run.
TEST_LADDER = {
    "bronze": (1, 0, "lifetime"),
    "silver": (2, 5000, "lifetime"),
    "gold": (3, 20000, "trailing_12m"),
}

# The `evaluate` fixture (tests/tiers/conftest.py): one evaluation run to its end.
Evaluate = Callable[..., Awaitable[tuple[TierEvaluationResult, WorkflowHandle[Any, Any]]]]


@dataclass
class SeedWallet:
    tier: str
    earns: Sequence[tuple[int, datetime]]  # (points, created_at)
    pending_since: datetime | None = None
    user_id: str = field(default_factory=lambda: f"tier-{uuid.uuid4().hex[:12]}")


async def seed(engine: AsyncEngine, wallets: Sequence[SeedWallet]) -> dict[str, uuid.UUID]:
    """Insert wallets with backdated earns; returns user id -> wallet id. Writes what the
    service's role may not (ledger rows, balances): pass the owner's engine (`owner_engine`)."""
    earns = [
        (w.user_id, pts, at, f"seed:{w.user_id}:{i}")
        for w in wallets
        for i, (pts, at) in enumerate(w.earns)
    ]
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "INSERT INTO wallets (user_id, tier, balance, lifetime_points) "
                "SELECT * FROM unnest(CAST(:u AS text[]), CAST(:t AS text[]), "
                "CAST(:s AS bigint[]), CAST(:s AS bigint[])) RETURNING user_id, wallet_id"
            ),
            {
                "u": [w.user_id for w in wallets],
                "t": [w.tier for w in wallets],
                "s": [sum(p for p, _ in w.earns) for w in wallets],
            },
        )
        ids = {u: wid for u, wid in rows}
        await conn.execute(
            text(
                "INSERT INTO wallet_transactions (wallet_id, type, amount, counter_account, "
                "idempotency_key, request_hash, description, created_at) "
                "SELECT w.wallet_id, 'earn', e.amount, 'issuance:base', e.key, 'seed', "
                "'test seed (backdated)', e.at "
                "FROM unnest(CAST(:u AS text[]), CAST(:a AS bigint[]), "
                "CAST(:at AS timestamptz[]), CAST(:k AS text[])) AS e(user_id, amount, at, key) "
                "JOIN wallets w ON w.user_id = e.user_id"
            ),
            {
                "u": [e[0] for e in earns],
                "a": [e[1] for e in earns],
                "at": [e[2] for e in earns],
                "k": [e[3] for e in earns],
            },
        )
        await open_lots_of_seeded_earns(conn, [e[3] for e in earns])
        pending = [w for w in wallets if w.pending_since is not None]
        if pending:
            await conn.execute(
                text(
                    "INSERT INTO wallet_tier_status (wallet_id, downgrade_pending_since, "
                    "downgrade_to) SELECT * FROM unnest(CAST(:w AS uuid[]), "
                    "CAST(:s AS timestamptz[]), CAST(:t AS text[]))"
                ),
                {
                    "w": [ids[w.user_id] for w in pending],
                    "s": [w.pending_since for w in pending],
                    "t": ["bronze" for _ in pending],
                },
            )
    return ids


async def direct_decisions(
    conn: AsyncConnection, ladder: Ladder, as_of: datetime, grace: timedelta
) -> dict[uuid.UUID, Decision]:
    """Every wallet's evaluation outcome, computed in Python from the raw rows."""
    trailing: dict[uuid.UUID, int] = {}
    # Points kept: earn and clawback rows, less debt entries (loyalty.tiers.rules).
    for wallet_id, amount, created_at in await conn.execute(
        text(
            "SELECT wallet_id, amount, created_at FROM wallet_transactions "
            "WHERE type IN ('earn', 'clawback') "
            "UNION ALL SELECT w.wallet_id, -d.points, d.created_at FROM points_debt_entries d "
            "JOIN wallets w ON w.user_id = d.user_id"
        )
    ):
        if in_trailing_window(created_at, as_of):
            trailing[wallet_id] = trailing.get(wallet_id, 0) + amount
    pending: dict[uuid.UUID, datetime] = dict(
        (
            await conn.execute(
                text("SELECT wallet_id, downgrade_pending_since FROM wallet_tier_status")
            )
        ).all()
    )
    return {
        wallet_id: decide(
            ladder,
            current=tier,
            lifetime=lifetime,
            trailing=trailing.get(wallet_id, 0),
            pending_since=pending.get(wallet_id),
            as_of=as_of,
            grace=grace,
        )
        for wallet_id, tier, lifetime in await conn.execute(
            text("SELECT wallet_id, tier, lifetime_points FROM wallets")
        )
    }


async def tiers_of(engine: AsyncEngine, wallet_ids: Sequence[uuid.UUID] | None = None) -> dict:
    """Wallet id -> (tier, downgrade pending since) of the given wallets, or of every wallet."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT w.wallet_id, w.tier, s.downgrade_pending_since FROM wallets w "
                "LEFT JOIN wallet_tier_status s USING (wallet_id)"
            )
        )
        found = {r[0]: (r[1], r[2]) for r in rows}
    return found if wallet_ids is None else {w: found[w] for w in wallet_ids}
