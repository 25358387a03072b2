"""Tiers: the tier catalog (migration 0001), the history of tier changes and the pending
downgrades (0004)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column

loyalty_tiers = Table(
    "loyalty_tiers",
    metadata,
    Column("code", Text),
    Column("name", Text, nullable=False),
    Column("rank", Integer, nullable=False, unique=True),
    # Points needed on the basis (lifetime or trailing 12 months) to reach this tier.
    Column("threshold", BigInteger, nullable=False),
    Column("basis", Text, nullable=False, server_default="lifetime"),
    # Earn multiplier in percent: 100 = 1x, 150 = 1.5x (integers, no floats).
    Column("earn_multiplier_pct", Integer, nullable=False, server_default=text("100")),
    # Redemption cap per booking: percent of the order and/or an absolute number of points.
    Column("redemption_cap_pct", Integer),
    Column("redemption_cap_points", BigInteger),
    Column("benefits", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    now_column("created_at"),
    now_column("updated_at"),
    PrimaryKeyConstraint("code", name="loyalty_tiers_pkey"),
    CheckConstraint("threshold >= 0", name="threshold_non_negative"),
    CheckConstraint("basis IN ('lifetime', 'trailing_12m')", name="basis_known"),
    CheckConstraint("earn_multiplier_pct > 0", name="multiplier_positive"),
    CheckConstraint(
        "redemption_cap_pct IS NULL OR redemption_cap_pct BETWEEN 0 AND 100", name="cap_pct_range"
    ),
    CheckConstraint(
        "redemption_cap_points IS NULL OR redemption_cap_points >= 0",
        name="cap_points_non_negative",
    ),
)

tier_history = Table(
    "tier_history",
    metadata,
    Column("history_id", BigInteger, Identity(always=True)),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("from_tier", Text, nullable=False),
    Column("to_tier", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evaluation_id", Text),
    Column("lifetime_points", BigInteger, nullable=False),
    Column("trailing_points", BigInteger, nullable=False),
    Column("as_of", TIMESTAMPTZ, nullable=False),
    now_column("created_at"),
    PrimaryKeyConstraint("history_id", name="tier_history_pkey"),
    CheckConstraint("direction IN ('upgrade', 'downgrade')", name="direction_known"),
    CheckConstraint("reason IN ('evaluation', 'realtime')", name="reason_known"),
    # One change per wallet per evaluation: a retried batch cannot record a second one.
    UniqueConstraint("evaluation_id", "wallet_id"),
    Index("ix_tier_history_wallet", "wallet_id", "history_id"),
)

# A wallet whose points no longer earn its tier keeps it for the grace period, counted from the
# first evaluation that saw it short. The row goes when the wallet re-qualifies or drops.
wallet_tier_status = Table(
    "wallet_tier_status",
    metadata,
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id")),
    Column("downgrade_pending_since", TIMESTAMPTZ, nullable=False),
    Column("downgrade_to", Text, nullable=False),
    Column("evaluation_id", Text),
    now_column("updated_at"),
    PrimaryKeyConstraint("wallet_id", name="wallet_tier_status_pkey"),
)
