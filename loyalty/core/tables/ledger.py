"""The ledger: wallets, holds and the append-only wallet_transactions (migration 0001; the
indexes for tier evaluation and the backoffice lists come from 0004), and the insert-only table
of point rates that values every row (0013)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column

# Minor units of the currency per point, up to 999,999.999999: times the ledger's bound on
# points it still fits a bigint.
RATE = Numeric(12, 6)

# The value of one point from `starts_at` on (the latest start at or before an instant is in
# force then). Insert-only: its trigger refuses UPDATE, DELETE, TRUNCATE and a start in the past.
point_rates = Table(
    "point_rates",
    metadata,
    Column("rate_id", BigInteger, Identity(always=True)),
    Column("starts_at", TIMESTAMPTZ, nullable=False, unique=True),
    Column("currency", Text, nullable=False),
    Column("point_value_minor", RATE, nullable=False),
    now_column("created_at"),
    Column("created_by", Text, nullable=False),
    PrimaryKeyConstraint("rate_id", name="point_rates_pkey"),
    CheckConstraint("point_value_minor > 0", name="value_positive"),
)

wallets = Table(
    "wallets",
    metadata,
    Column("wallet_id", UUID(as_uuid=True), server_default=text("gen_random_uuid()")),
    Column("user_id", Text, nullable=False, unique=True),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("held", BigInteger, nullable=False, server_default=text("0")),
    Column(
        "tier",
        Text,
        ForeignKey("loyalty_tiers.code", onupdate="CASCADE"),
        nullable=False,
        server_default="bronze",
    ),
    Column("lifetime_points", BigInteger, nullable=False, server_default=text("0")),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    now_column("created_at"),
    now_column("updated_at"),
    PrimaryKeyConstraint("wallet_id", name="wallets_pkey"),
    CheckConstraint("held >= 0", name="held_non_negative"),
    CheckConstraint("balance - held >= 0", name="available_non_negative"),
    # Backoffice: customers by tier, keyset-paginated on user_id.
    Index("ix_wallets_tier_user", "tier", "user_id"),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", UUID(as_uuid=True)),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("booking_id", Text),
    Column("status", Text, nullable=False, server_default="open"),
    Column("expires_at", TIMESTAMPTZ, nullable=False),
    now_column("created_at"),
    Column("resolved_at", TIMESTAMPTZ),
    PrimaryKeyConstraint("hold_id", name="holds_pkey"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('open', 'captured', 'released')", name="status_known"),
    Index("ix_holds_wallet_open", "wallet_id", postgresql_where=text("status = 'open'")),
)

wallet_transactions = Table(
    "wallet_transactions",
    metadata,
    Column("tx_id", BigInteger, Identity(always=True)),  # also the pagination key
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("type", Text, nullable=False),
    # Signed change to the posted balance, and to the held amount (holds move only `held`).
    Column("amount", BigInteger, nullable=False),
    Column("held_delta", BigInteger, nullable=False, server_default=text("0")),
    Column("currency_amount", BigInteger),
    Column("currency", Text),
    Column("counter_account", Text, nullable=False),
    Column("booking_id", Text),
    Column("payment_id", Text),
    Column("hold_id", UUID(as_uuid=True), ForeignKey("holds.hold_id")),
    # A refund or clawback names the posting it (partly) reverses.
    Column("reverses_tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id")),
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("request_hash", Text, nullable=False),
    Column("description", Text),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    now_column("created_at"),
    # The row's book value (0013), filled by a trigger: its points (the amount, or held_delta on
    # a hold or release) at the rate in force (rate_id), or a campaign's own rate.
    Column("value_amount", BigInteger, nullable=False),
    Column("value_rate", RATE, nullable=False),
    Column("value_currency", Text, nullable=False),
    Column("rate_id", BigInteger, nullable=False),
    Column("value_campaign_id", Text),
    PrimaryKeyConstraint("tx_id", name="wallet_transactions_pkey"),
    CheckConstraint(
        "type IN ('earn', 'burn', 'refund', 'adjustment', 'hold', 'capture', 'release', 'expire',"
        " 'clawback')",
        name="type_known",
    ),
    Index("ix_wallet_transactions_wallet_tx", "wallet_id", "tx_id"),
    Index("ix_wallet_transactions_booking", "booking_id"),
    Index(
        "ix_wallet_transactions_reverses",
        "reverses_tx_id",
        postgresql_where=text("reverses_tx_id IS NOT NULL"),
    ),
    # A hold is resolved (captured or released) by at most one row, whatever the key.
    Index(
        "uq_wallet_transactions_hold_resolution",
        "hold_id",
        unique=True,
        postgresql_where=text("type IN ('capture', 'release')"),
    ),
    # A hold's own row, which a release or a capture's refund gives its lots back from (0012).
    Index(
        "uq_wallet_transactions_hold_placed",
        "hold_id",
        unique=True,
        postgresql_where=text("type = 'hold'"),
    ),
    # Trailing-window sums read only this index (index-only scan per wallet).
    Index(
        "ix_wallet_transactions_qualifying",
        "wallet_id",
        "created_at",
        postgresql_include=["amount"],
        postgresql_where=text("type IN ('earn', 'clawback')"),
    ),
)

# Point lots (migration 0012): what is left of each credit and when it expires; written only by
# the posting functions. Names follow the metadata's naming convention.
point_lots = Table(
    "point_lots",
    metadata,
    Column("lot_id", BigInteger, Identity(always=True), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("opened_by_tx_id", BigInteger),  # tx ids without keys: see migration 0012
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("expires_at", TIMESTAMPTZ),  # NULL: never
    Column("expired_tx_id", BigInteger),
    Column("closed_at", TIMESTAMPTZ),  # due and visited by the expiry: takes nothing back
    now_column("created_at"),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_within"),
    Index(
        "ix_point_lots_draw",
        "wallet_id",
        "expires_at",
        "lot_id",
        postgresql_where=text("closed_at IS NULL"),
    ),
    Index(
        "ix_point_lots_due",
        "expires_at",
        "lot_id",
        postgresql_where=text("expires_at IS NOT NULL AND closed_at IS NULL"),
    ),
    postgresql_with={"fillfactor": 90},
)

# Append-only, like the ledger: which lots each posting drew from (negative) or gave back to.
lot_movements = Table(
    "lot_movements",
    metadata,
    Column("tx_id", BigInteger, nullable=False),
    Column("lot_id", BigInteger, ForeignKey("point_lots.lot_id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("source_tx_id", BigInteger),
    now_column("created_at"),
    PrimaryKeyConstraint("tx_id", "lot_id"),
    CheckConstraint("points <> 0", name="points_nonzero"),
    Index(
        "ix_lot_movements_source",
        "source_tx_id",
        postgresql_where=text("source_tx_id IS NOT NULL"),
    ),
)
