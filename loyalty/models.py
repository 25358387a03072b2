"""Database tables (SQLAlchemy Core). The Alembic migrations are the source of truth for DDL;
these definitions mirror them for queries and must be kept in step."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

loyalty_tiers = Table(
    "loyalty_tiers",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("rank", Integer, nullable=False, unique=True),
    # Points needed on the basis (lifetime or trailing 12 months) to reach this tier.
    Column("threshold", BigInteger, nullable=False),
    Column("basis", Text, nullable=False, server_default="lifetime"),
    # Earn multiplier in percent: 100 = 1x, 150 = 1.5x (integers, no floats).
    Column("earn_multiplier_pct", Integer, nullable=False, server_default="100"),
    # Redemption cap per booking: percent of the order and/or an absolute number of points.
    Column("redemption_cap_pct", Integer, nullable=True),
    Column("redemption_cap_points", BigInteger, nullable=True),
    Column("benefits", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("threshold >= 0", name="threshold_non_negative"),
    CheckConstraint("basis IN ('lifetime', 'trailing_12m')", name="basis_known"),
    CheckConstraint("earn_multiplier_pct > 0", name="multiplier_positive"),
)

wallets = Table(
    "wallets",
    metadata,
    Column(
        "wallet_id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    ),
    Column("user_id", Text, nullable=False, unique=True),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("tier", Text, ForeignKey("loyalty_tiers.code"), nullable=False),
    Column("lifetime_points", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("held >= 0", name="held_non_negative"),
    CheckConstraint("balance - held >= 0", name="available_non_negative"),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", UUID(as_uuid=True), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("booking_id", Text, nullable=True),
    Column("status", Text, nullable=False, server_default="open"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('open', 'captured', 'released')", name="status_known"),
    Index("ix_holds_wallet_open", "wallet_id", postgresql_where=text("status = 'open'")),
)

wallet_transactions = Table(
    "wallet_transactions",
    metadata,
    Column("tx_id", BigInteger, primary_key=True),  # identity; also the pagination key
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("type", Text, nullable=False),
    # Signed change to the posted balance, and to the held amount (holds move only `held`).
    Column("amount", BigInteger, nullable=False),
    Column("held_delta", BigInteger, nullable=False, server_default="0"),
    Column("currency_amount", BigInteger, nullable=True),
    Column("currency", Text, nullable=True),
    Column("counter_account", Text, nullable=False),
    Column("booking_id", Text, nullable=True),
    Column("payment_id", Text, nullable=True),
    Column("hold_id", UUID(as_uuid=True), ForeignKey("holds.hold_id"), nullable=True),
    # A refund or clawback names the posting it (partly) reverses.
    Column("reverses_tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id"), nullable=True),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("idempotency_key", name="uq_wallet_transactions_idempotency_key"),
    Index("ix_wallet_transactions_wallet_tx", "wallet_id", "tx_id"),
    Index("ix_wallet_transactions_booking", "booking_id"),
    # A hold is resolved (captured or released) by at most one row, whatever the key.
    Index(
        "uq_wallet_transactions_hold_resolution",
        "hold_id",
        unique=True,
        postgresql_where=text("type IN ('capture', 'release')"),
    ),
)
