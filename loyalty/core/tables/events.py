"""Events in and out: Stripe webhook events, recorded by event id so a redelivered event acts once
(migration 0002), and the notification outbox, delivered at most once by key (0003), with its
outbound events and the relay's bookkeeping (0011)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column

stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", Text),
    Column("type", Text, nullable=False),
    Column("payment_intent_id", Text),
    Column("workflow_id", Text),
    Column("outcome", Text, nullable=False),
    now_column("received_at"),
    PrimaryKeyConstraint("event_id", name="stripe_events_pkey"),
    CheckConstraint(
        "outcome IN ('signalled', 'saga_ended', 'unknown_payment_intent', 'ignored')",
        name="outcome_known",
    ),
    Index("ix_stripe_events_payment_intent_id", "payment_intent_id"),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("notification_id", BigInteger, Identity(always=True)),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    now_column("created_at"),
    Column("delivered_at", TIMESTAMPTZ),
    # The relay (0011): `notify` rows go to NOTIFY_URL, `event` rows (written by a trigger beside
    # each notification) to the events topic; backoff, and rows a receiver refused for good.
    Column("channel", Text, nullable=False, server_default=text("'notify'")),
    now_column("next_attempt_at"),
    Column("parked_at", TIMESTAMPTZ),
    PrimaryKeyConstraint("notification_id", name="notification_outbox_pkey"),
    CheckConstraint("channel IN ('notify', 'event')", name="channel_known"),
    Index("ix_notification_outbox_user", "user_id"),
    Index(
        "ix_notification_outbox_pending",
        "channel",
        "user_id",
        "notification_id",
        postgresql_where=text("delivered_at IS NULL AND parked_at IS NULL"),
    ),
)
