"""Events in and out, for operators (admin): the outbox's backlog and parked rows, the intake
consumer group's lag, and putting a parked row back in line once its cause is fixed."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import Admin, AppSettings, Connection
from api.errors import error_responses
from loyalty.core.errors import NotFound
from loyalty.notifications import relay as outbox_relay
from streams import kafka

router = APIRouter(prefix="/outbox", tags=["operations"])

LAG_TIMEOUT_SECONDS = 5.0


class ChannelBacklog(BaseModel):
    pending: int = Field(description="rows not yet delivered (waiting or backing off)")
    oldest_pending_at: datetime | None
    parked: int = Field(description="rows a receiver refused for good, waiting for an operator")


class ParkedRow(BaseModel):
    notification_id: int
    channel: Literal["notify", "event"]
    idempotency_key: str
    kind: str
    user_id: str
    attempts: int
    last_error: str | None
    created_at: datetime
    parked_at: datetime


class OutboxStatus(BaseModel):
    channels: dict[str, ChannelBacklog] = Field(description="`notify` and `event`")
    parked: list[ParkedRow] = Field(description="the most recently written parked rows")
    consumer_lag: dict[str, dict[str, int]] | None = Field(
        description="per intake topic and partition, messages the consumer group has not "
        "committed; null when Kafka is not configured or not reachable"
    )
    consumer_lag_error: str | None = None


class Requeued(BaseModel):
    notification_id: int
    requeued: bool


NotificationId = Annotated[int, Path(alias="notificationId", ge=1, le=2**63 - 1)]


@router.get("", response_model=OutboxStatus, responses=error_responses())
async def outbox_status(
    conn: Connection,
    settings: AppSettings,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OutboxStatus:
    """The outbox backlog per channel, the parked rows, and the intake consumers' lag."""
    backlog = await outbox_relay.backlog(conn)
    parked = await outbox_relay.parked(conn, limit)
    lag: dict[str, dict[str, int]] | None = None
    lag_error: str | None = None
    if settings.kafka_bootstrap_servers:
        try:
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                lag = await kafka.consumer_lag(settings)
        except Exception as exc:  # Kafka away: the rest of the answer still stands
            lag_error = f"{type(exc).__name__}: {exc}"[:500]
    return OutboxStatus(
        channels={k: ChannelBacklog(**v) for k, v in backlog.items()},
        parked=[ParkedRow(**row) for row in parked],
        consumer_lag=lag,
        consumer_lag_error=lag_error,
    )


@router.post("/{notificationId}/retry", response_model=Requeued, responses=error_responses(404))
async def retry_parked(
    notification_id: NotificationId, conn: Connection, principal: Admin
) -> Requeued:
    """Put a parked row back in line: the relay delivers it again (in its wallet's order)."""
    if not await outbox_relay.unpark(conn, notification_id):
        raise NotFound(f"no parked outbox row {notification_id}", notification_id=notification_id)
    return Requeued(notification_id=notification_id, requeued=True)
