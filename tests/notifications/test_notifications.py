"""Notifications reach a real local HTTP receiver exactly once per event, through a real
Temporal worker that retries the activity while the receiver fails its first attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import text
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.notifications import NotificationActivities
from loyalty.notifications.models import Notification, NotificationKind
from workflows import policies

# Retried at once, so the receiver's refused first attempts cost milliseconds, not the seconds
# of the shipped policy's backoff.
RETRY_AT_ONCE = RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff_coefficient=1.0)


@workflow.defn(sandboxed=False)
class NotifyTwiceWorkflow:
    """Test-only: sends the same notification twice, as a replayed or retried saga would."""

    @workflow.run
    async def run(self, note: Notification) -> list[str]:
        return [
            await workflow.execute_activity_method(
                NotificationActivities.send,
                note,
                start_to_close_timeout=policies.NOTIFY_TIMEOUT,
                retry_policy=RETRY_AT_ONCE,
            )
            for _ in range(2)
        ]


def _note(user_id: str) -> Notification:
    return Notification(
        idempotency_key=f"points_earned:{user_id}:b1",
        kind=NotificationKind.POINTS_EARNED,
        user_id=user_id,
        payload={"points": 120, "booking_id": "b1"},
    )


async def _run(temporal_client, task_queue, engine, url, note) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as http:
        acts = NotificationActivities(engine, url, http)
        async with Worker(
            temporal_client,
            task_queue=task_queue,
            workflows=[NotifyTwiceWorkflow],
            activities=[acts.send],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            # A bounded run: a delivery bug must fail the test, not retry forever.
            return await temporal_client.execute_workflow(
                NotifyTwiceWorkflow.run,
                note,
                id=f"notify-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=60),
            )


async def test_delivered_once_although_receiver_fails_first_attempts(
    temporal_client, task_queue, engine, receiver, user_id
):
    receiver.fail_first = 3
    results = await _run(temporal_client, task_queue, engine, receiver.url, _note(user_id))
    assert results == ["delivered", "already_delivered"]
    assert receiver.attempts == 4
    assert receiver.received == [
        {
            "id": f"points_earned:{user_id}:b1",
            "kind": "points_earned",
            "user_id": user_id,
            "payload": {"points": 120, "booking_id": "b1"},
            "key": f"points_earned:{user_id}:b1",
        }
    ]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT attempts, delivered_at IS NOT NULL, last_error "
                    "FROM notification_outbox WHERE user_id = :u AND channel = 'notify'"
                ),
                {"u": user_id},
            )
        ).one()
    assert tuple(row) == (4, True, None)


async def test_without_url_the_outbox_keeps_one_row(temporal_client, task_queue, engine, user_id):
    results = await _run(temporal_client, task_queue, engine, None, _note(user_id))
    assert results == ["queued", "queued"]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT kind, payload, delivered_at FROM notification_outbox "
                    "WHERE user_id = :u AND channel = 'notify'"
                ),
                {"u": user_id},
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("points_earned", {"points": 120, "booking_id": "b1"}, None)
    ]


async def test_a_permanent_refusal_is_not_retried(engine, receiver, user_id):
    """Refused for good: tried once, the row parked for an operator, and the activity passes, so
    the workflow that announced a change already made never fails for it."""
    receiver.fail_first = 100
    receiver.failure_status = 422
    async with httpx.AsyncClient(timeout=5) as http:
        acts = NotificationActivities(engine, receiver.url, http)
        assert await ActivityEnvironment().run(acts.send, _note(user_id)) == "refused"
    assert receiver.attempts == 1 and receiver.received == []
    async with engine.connect() as conn:
        parked = (
            await conn.execute(
                text(
                    "SELECT parked_at IS NOT NULL, delivered_at IS NULL, last_error "
                    "FROM notification_outbox WHERE user_id = :u AND channel = 'notify'"
                ),
                {"u": user_id},
            )
        ).one()
    assert tuple(parked) == (True, True, "HTTP 422")
