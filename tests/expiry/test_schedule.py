"""The `points-expiry` schedule against the real Temporal dev server (the time-skipping server
has no schedules): `python worker.py` creates it at start-up with the spec its settings give,
a restarted worker updates it in place and keeps an operator's pause, and a trigger runs it.

The schedule's runs themselves (at the workflow's `now`) are tested on the time-skipping server
(test_expiry.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionResult,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
)
from temporalio.service import RPCError

from loyalty.core.settings import Settings
from loyalty.expiry.schedule import SCHEDULE_ID, build_schedule
from tests.harness.waits import eventually, within
from tests.harness.workers import WorkerProcess
from workflows.expiry import PointsExpiryWorkflow


@pytest.fixture
async def no_schedule(temporal_client: Client) -> AsyncIterator[None]:
    """No expiry schedule before or after the test: the dev server is shared by the session,
    and any `worker.py` an earlier test started created one."""

    async def delete() -> None:
        with contextlib.suppress(RPCError):  # none there
            await temporal_client.get_schedule_handle(SCHEDULE_ID).delete()

    await delete()
    yield
    await delete()


async def test_the_worker_creates_the_schedule_keeps_its_pause_and_a_trigger_runs_it(
    temporal_client: Client, settings: Settings, no_schedule: None, tmp_path: Path
) -> None:
    nightly = settings.model_copy(
        update={
            "points_expiry_time": "04:45",
            "points_expiry_timezone": "Asia/Ho_Chi_Minh",
            "points_expiry_reminder_days": 14,
            "points_expiry_batch_size": 500,
        }
    )
    first = WorkerProcess(nightly, tmp_path / "first")
    second = WorkerProcess(nightly.model_copy(update={"points_expiry_time": "05:10"}), tmp_path)
    (tmp_path / "first").mkdir()
    try:
        await first.start()
        log = (tmp_path / "first" / "worker-0.log").read_text()
        assert "schedule points-expiry created (daily at 04:45 Asia/Ho_Chi_Minh)" in log
        handle = temporal_client.get_schedule_handle(SCHEDULE_ID)
        desc = await handle.describe()
        calendar = desc.schedule.spec.calendars[0]
        assert (calendar.hour[0].start, calendar.minute[0].start) == (4, 45)
        assert desc.schedule.spec.time_zone_name == "Asia/Ho_Chi_Minh"
        assert desc.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert desc.schedule.policy.catchup_window == timedelta(hours=6)
        assert not desc.schedule.state.paused
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (
            "PointsExpiry",
            settings.temporal_task_queue,
        )
        (payload,) = action.args
        assert isinstance(payload, Payload)
        [given] = await temporal_client.data_converter.decode([payload], [dict])
        assert (given["reminder_days"], given["batch_size"]) == (14, 500)
        assert given["as_of"] is None  # each run expires what is due at its own start

        await handle.pause(note="paused by an operator")
        first.stop_all()
        await second.start()  # a redeploy with another time
        log = (tmp_path / "worker-0.log").read_text()
        assert "schedule points-expiry updated (daily at 05:10 Asia/Ho_Chi_Minh)" in log
        desc = await handle.describe()
        calendar = desc.schedule.spec.calendars[0]
        assert (calendar.hour[0].start, calendar.minute[0].start) == (5, 10)
        assert desc.schedule.state.paused
        assert desc.schedule.state.note == "paused by an operator"

        await handle.trigger()  # `temporal schedule trigger --schedule-id points-expiry`

        async def recent() -> Sequence[ScheduleActionResult]:
            return (await handle.describe()).info.recent_actions

        started = (await eventually(recent, seconds=20))[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        assert started.workflow_id.startswith(f"{SCHEDULE_ID}-")
        run = temporal_client.get_workflow_handle_for(PointsExpiryWorkflow.run, started.workflow_id)
        progress = (await within(run.result(), 90)).progress
        assert (progress.status, progress.reminder_days) == ("done", 14)
        queried = await run.query(PointsExpiryWorkflow.progress)
        assert queried is not None and queried.expiry_id == progress.expiry_id
    finally:
        first.stop_all()
        second.stop_all()


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="IANA"):
        build_schedule(Settings(environment="test", points_expiry_timezone="Mars/Olympus"))
