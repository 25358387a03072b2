"""Earning (migration 0006): campaigns, booking events (deduplicated by event id), per-booking
accruals (pending points), refunds processed per booking, and the points debt left by clawbacks
larger than the balance."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column
from loyalty.core.tables.ledger import RATE

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", Text),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("multiplier_pct", Integer, nullable=False, server_default=text("100")),
    Column("bonus_points", BigInteger, nullable=False, server_default=text("0")),
    Column("product_types", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("categories", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("cap_points_per_booking", BigInteger),
    Column("starts_at", TIMESTAMPTZ, nullable=False),
    Column("ends_at", TIMESTAMPTZ, nullable=False),
    Column("ended_at", TIMESTAMPTZ),
    Column("created_by", Text),
    now_column("created_at"),
    now_column("updated_at"),
    # How long the points of earns it adds to last (0012; NULL: the default, 0: never).
    Column("points_validity_months", Integer),
    # The campaign's own value of a point (0013): earns issued under it are valued at it.
    Column("point_value_minor", RATE),
    PrimaryKeyConstraint("campaign_id", name="campaigns_pkey"),
    CheckConstraint("kind IN ('multiplier', 'bonus')", name="kind_known"),
    CheckConstraint("ends_at > starts_at", name="window"),
    CheckConstraint("kind <> 'multiplier' OR multiplier_pct > 100", name="multiplier"),
    CheckConstraint("kind <> 'bonus' OR bonus_points > 0", name="bonus"),
    CheckConstraint("cap_points_per_booking IS NULL OR cap_points_per_booking >= 0", name="cap"),
    CheckConstraint(
        "points_validity_months >= 0 AND points_validity_months <= 1200",
        name="points_validity_within",
    ),
    CheckConstraint(
        "point_value_minor IS NULL OR point_value_minor > 0", name="point_value_positive"
    ),
    Index("ix_campaigns_window", "starts_at", "ends_at"),
)

# Booking events from the booking platform, claimed by event id so a redelivery acts once.
booking_events = Table(
    "booking_events",
    metadata,
    Column("event_id", Text),
    Column("type", Text, nullable=False),
    Column("booking_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("workflow_id", Text, nullable=False),
    now_column("received_at"),
    PrimaryKeyConstraint("event_id", name="booking_events_pkey"),
    Index("ix_booking_events_booking", "booking_id"),
)

# What a booking earns: planned when paid, posted at once or when its pending period ends.
# `pending_points` is what activation will post (reduced by partial refunds while pending).
booking_accruals = Table(
    "booking_accruals",
    metadata,
    Column("booking_id", Text),
    Column("user_id", Text, nullable=False),
    Column("payment_id", Text),
    Column("amount_paid", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("pending_points", BigInteger, nullable=False, server_default=text("0")),
    Column("status", Text, nullable=False),
    Column("pending_until", TIMESTAMPTZ),
    Column("idempotency_key", Text, nullable=False),
    Column("earn_tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id")),
    Column("breakdown", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    now_column("created_at"),
    now_column("updated_at"),
    PrimaryKeyConstraint("booking_id", name="booking_accruals_pkey"),
    CheckConstraint("status IN ('pending', 'posted', 'voided')", name="status_known"),
    CheckConstraint("points >= 0 AND pending_points >= 0", name="points"),
    Index(
        "ix_booking_accruals_user_pending",
        "user_id",
        postgresql_where=text("status = 'pending'"),
    ),
)

# One row per refund of a booking; each compensation step records its result once.
booking_refunds = Table(
    "booking_refunds",
    metadata,
    Column("booking_id", Text),
    Column("refund_id", Text),
    Column("user_id", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("full_refund", Boolean, nullable=False, server_default=text("false")),
    Column("points_returned", BigInteger),
    Column("points_clawed_back", BigInteger),
    Column("pending_reduced", BigInteger),
    Column("debt_recorded", BigInteger),
    now_column("created_at"),
    PrimaryKeyConstraint("booking_id", "refund_id"),
    CheckConstraint("amount >= 0", name="amount_non_negative"),
)

# Points owed after a clawback larger than the available balance (positive entries) and their
# repayment out of later earns (negative entries). Append-only; outstanding = SUM(points).
points_debt_entries = Table(
    "points_debt_entries",
    metadata,
    Column("entry_id", BigInteger, Identity(always=True)),
    Column("user_id", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("booking_id", Text),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id")),
    now_column("created_at"),
    PrimaryKeyConstraint("entry_id", name="points_debt_entries_pkey"),
    CheckConstraint("points <> 0", name="points_non_zero"),
    Index("ix_points_debt_entries_user", "user_id"),
)
