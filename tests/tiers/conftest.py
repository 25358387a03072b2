"""Tier tests: a known ladder (restored afterwards), wallets seeded with backdated earns, a
worker built as worker.py builds it, and the tier classification recomputed in plain Python.

Backdated earns are INSERTed (never UPDATEd) with an explicit created_at, together with
wallets whose balance and lifetime points equal their rows, so the ledger invariants hold."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client, WorkflowHandle

from activities import Dependencies
from loyalty.core.settings import Settings
from loyalty.tiers.contracts import TierEvaluationInput, TierEvaluationResult
from loyalty.tiers.rules import Decision, Ladder, TierStep, decide, in_trailing_window
from tests.harness.histories import SaveHistory, history_saver
from worker import build_worker
from workflows.tier_evaluation import TierEvaluationWorkflow

HISTORIES = Path(__file__).parent / "histories"
# `TIERS_SAVE_HISTORIES=1 pytest tests/tiers` rewrites the histories the replay test checks
# (tests/tiers/histories/*.json) from the tests that call `save_history`.
SAVE_HISTORIES_ENV = "TIERS_SAVE_HISTORIES"

# Silver on lifetime points, gold on the trailing 12 months: both bases in every run.
TEST_LADDER = {
    "bronze": (1, 0, "lifetime"),
    "silver": (2, 5000, "lifetime"),
    "gold": (3, 20000, "trailing_12m"),
}


@pytest.fixture
async def ladder(engine: AsyncEngine) -> AsyncIterator[Ladder]:
    async with engine.begin() as conn:
        saved = (await conn.execute(text("SELECT code, threshold, basis FROM loyalty_tiers"))).all()
        for code, (_rank, threshold, basis) in TEST_LADDER.items():
            await conn.execute(
                text("UPDATE loyalty_tiers SET threshold = :t, basis = :b WHERE code = :c"),
                {"t": threshold, "b": basis, "c": code},
            )
    yield Ladder.of(
        [TierStep(code=c, rank=r, threshold=t, basis=b) for c, (r, t, b) in TEST_LADDER.items()]
    )
    async with engine.begin() as conn:
        for code, threshold, basis in saved:
            await conn.execute(
                text("UPDATE loyalty_tiers SET threshold = :t, basis = :b WHERE code = :c"),
                {"t": threshold, "b": basis, "c": code},
            )


@dataclass
class SeedWallet:
    tier: str
    earns: Sequence[tuple[int, datetime]]  # (points, created_at)
    pending_since: datetime | None = None
    user_id: str = field(default_factory=lambda: f"tier-{uuid.uuid4().hex[:12]}")


async def seed(engine: AsyncEngine, wallets: Sequence[SeedWallet]) -> dict[str, uuid.UUID]:
    """Insert wallets with backdated earns; returns user id -> wallet id."""
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
    for wallet_id, amount, created_at in await conn.execute(
        text(
            "SELECT wallet_id, amount, created_at FROM wallet_transactions "
            "WHERE type IN ('earn', 'clawback')"
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
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT w.wallet_id, w.tier, s.downgrade_pending_since FROM wallets w "
                "LEFT JOIN wallet_tier_status s USING (wallet_id)"
            )
        )
        found = {r[0]: (r[1], r[2]) for r in rows}
    return found if wallet_ids is None else {w: found[w] for w in wallet_ids}


@pytest.fixture
def save_history(temporal_client: Client) -> SaveHistory:
    """`await save_history("downgrade_into_grace", handle.id)` stores the run's history (with
    `run_id=..., all_runs=True`: every run of a continue-as-new chain) for the replay test when
    TIERS_SAVE_HISTORIES=1 (a no-op otherwise)."""
    return history_saver(temporal_client, HISTORIES)


Evaluate = Callable[..., Awaitable[tuple[TierEvaluationResult, WorkflowHandle[Any, Any]]]]


@pytest.fixture
async def evaluate(
    temporal_client: Client, engine: AsyncEngine, task_queue: str
) -> AsyncIterator[Evaluate]:
    """`await evaluate(as_of=..., batch_size=...)` runs one TierEvaluationWorkflow to the end
    on a worker built by worker.build_worker."""
    settings = Settings(environment="test")
    async with build_worker(
        temporal_client, Dependencies(settings=settings, engine=engine), task_queue
    ):

        async def run(**fields: Any) -> tuple[TierEvaluationResult, WorkflowHandle[Any, Any]]:
            handle = await temporal_client.start_workflow(
                TierEvaluationWorkflow.run,
                TierEvaluationInput(**fields),
                id=f"tier-evaluation-test-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=120),
            )
            return await handle.result(), handle

        yield run
