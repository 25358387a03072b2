"""The `tier-evaluation` schedule against the real Temporal dev server: created once, updated in
place on the next start (keeping an operator's pause), and triggerable by an operator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionResult,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError

from loyalty.core.payload_encryption import ENCODING
from loyalty.core.settings import Settings
from loyalty.tiers.schedule import SCHEDULE_ID, build_schedule, ensure_tier_schedule
from tests.harness.waits import eventually, within
from workflows.tiers import TierEvaluationWorkflow


@pytest.fixture
async def no_schedule(temporal_client: Client) -> AsyncIterator[None]:
    """No tier schedule before or after the test. The dev server is shared by the session, and
    any `worker.py` that an earlier test started created the schedule at its start-up."""

    async def delete() -> None:
        with contextlib.suppress(RPCError):  # none there
            await temporal_client.get_schedule_handle(SCHEDULE_ID).delete()

    await delete()
    yield
    await delete()


async def _listed(client: Client) -> list[str]:
    """The tier schedule's ids as the list API shows them (eventually consistent: poll)."""
    return [s.id async for s in await client.list_schedules() if s.id == SCHEDULE_ID]


async def test_created_twice_is_one_schedule_and_stays_paused(
    temporal_client: Client, settings: Settings, no_schedule: None
) -> None:
    nightly = settings.model_copy(
        update={
            "tier_evaluation_time": "03:30",
            "tier_evaluation_timezone": "Asia/Ho_Chi_Minh",
            "tier_downgrade_grace_days": 14,
        }
    )
    assert await ensure_tier_schedule(temporal_client, nightly) == "created"
    handle = temporal_client.get_schedule_handle(SCHEDULE_ID)
    await handle.pause(note="paused by an operator during a migration")

    redeployed = nightly.model_copy(update={"tier_evaluation_time": "04:15"})
    assert await ensure_tier_schedule(temporal_client, redeployed) == "updated"

    assert await eventually(lambda: _listed(temporal_client), seconds=10) == [SCHEDULE_ID]
    desc = await handle.describe()
    assert desc.schedule.state.paused
    assert desc.schedule.state.note == "paused by an operator during a migration"
    calendar = desc.schedule.spec.calendars[0]
    assert (calendar.hour[0].start, calendar.minute[0].start) == (4, 15)  # the update applied
    assert desc.schedule.spec.time_zone_name == "Asia/Ho_Chi_Minh"
    assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert desc.schedule.policy.catchup_window == timedelta(hours=6)
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == ("TierEvaluation", settings.temporal_task_queue)
    # Described schedules carry raw payloads, encrypted: the summary and the workflow input.
    summary = action.static_summary
    assert summary is not None and not isinstance(summary, str)
    (payload,) = action.args
    assert isinstance(payload, Payload)
    converter = temporal_client.data_converter
    assert {summary.metadata["encoding"], payload.metadata["encoding"]} == {ENCODING}
    [text] = await converter.decode([summary], [str])
    assert text == "Daily tier evaluation of every wallet"
    [given] = await converter.decode([payload], [dict])
    assert given["downgrade_grace_days"] == 14


async def test_an_operator_trigger_runs_the_evaluation(
    temporal_client: Client,
    settings: Settings,
    worker: None,
    no_schedule: None,
    engine: AsyncEngine,
) -> None:
    await ensure_tier_schedule(
        temporal_client, settings.model_copy(update={"tier_evaluation_batch_size": 500})
    )
    handle = temporal_client.get_schedule_handle(SCHEDULE_ID)

    await handle.trigger()  # what `temporal schedule trigger --schedule-id tier-evaluation` does

    async def recent_actions() -> Sequence[ScheduleActionResult]:
        return (await handle.describe()).info.recent_actions

    started = (await eventually(recent_actions, seconds=10))[0].action
    assert isinstance(started, ScheduleActionExecutionStartWorkflow)
    assert started.workflow_id.startswith(f"{SCHEDULE_ID}-")
    run = temporal_client.get_workflow_handle_for(TierEvaluationWorkflow.run, started.workflow_id)
    progress = (await within(run.result(), 60)).progress
    async with engine.connect() as conn:
        wallets = (await conn.execute(text("SELECT count(*) FROM wallets"))).scalar_one()
    assert (progress.status, progress.wallets_evaluated) == ("done", wallets)
    queried = await run.query(TierEvaluationWorkflow.progress)
    assert queried is not None and queried.evaluation_id == progress.evaluation_id


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="IANA"):
        build_schedule(Settings(environment="test", tier_evaluation_timezone="Mars/Olympus"))
