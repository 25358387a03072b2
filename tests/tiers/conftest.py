"""Tier fixtures on top of the shared harness: a known ladder (restored afterwards), and
`evaluate`, which runs one TierEvaluationWorkflow to the end on the test's worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle

from loyalty.core.settings import Settings
from loyalty.tiers.contracts import TierEvaluationInput, TierEvaluationResult
from loyalty.tiers.rules import Ladder, TierStep
from tests.tiers.helpers import TEST_LADDER, Evaluate
from workflows.tiers import TierEvaluationWorkflow


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


@pytest.fixture
def evaluate(temporal_client: Client, settings: Settings, worker: None) -> Evaluate:
    """`await evaluate(as_of=..., batch_size=...)` runs one TierEvaluationWorkflow to the end
    on the test's worker; returns its result and its handle."""

    async def run(**fields: Any) -> tuple[TierEvaluationResult, WorkflowHandle[Any, Any]]:
        handle = await temporal_client.start_workflow(
            TierEvaluationWorkflow.run,
            TierEvaluationInput(**fields),
            id=f"tier-evaluation-test-{uuid.uuid4()}",
            task_queue=settings.temporal_task_queue,
            execution_timeout=timedelta(seconds=120),
        )
        return await handle.result(), handle

    return run
