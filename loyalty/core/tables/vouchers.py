"""Vouchers (migration 0005): catalog, uploaded code pool, purchases (keyed by the client's
idempotency key), per-customer purchase counters, issued vouchers."""

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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column

voucher_products = Table(
    "voucher_products",
    metadata,
    Column("product_id", UUID(as_uuid=True), server_default=text("gen_random_uuid()")),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("price_points", BigInteger, nullable=False),
    Column("code_source", Text, nullable=False, server_default="generated"),
    # NULL: unlimited. Uploaded-code products count their uploaded codes here.
    Column("inventory_total", BigInteger),
    # Reserved by purchases in flight plus sold; only conditional UPDATEs move it.
    Column("inventory_taken", BigInteger, nullable=False, server_default=text("0")),
    Column("sale_starts_at", TIMESTAMPTZ),
    Column("sale_ends_at", TIMESTAMPTZ),
    Column("voucher_valid_days", Integer),
    Column("voucher_valid_until", TIMESTAMPTZ),
    Column("min_tier", Text, ForeignKey("loyalty_tiers.code", onupdate="CASCADE")),
    Column("per_customer_limit", Integer),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    now_column("created_at"),
    now_column("updated_at"),
    PrimaryKeyConstraint("product_id", name="voucher_products_pkey"),
    CheckConstraint("price_points > 0", name="price_positive"),
    CheckConstraint("code_source IN ('generated', 'uploaded')", name="code_source_known"),
    CheckConstraint(
        "code_source = 'generated' OR inventory_total IS NOT NULL", name="uploaded_is_finite"
    ),
    CheckConstraint(
        "inventory_taken >= 0 AND (inventory_total IS NULL OR inventory_taken <= inventory_total)",
        name="inventory_within_total",
    ),
    CheckConstraint(
        "sale_starts_at IS NULL OR sale_ends_at IS NULL OR sale_starts_at < sale_ends_at",
        name="sale_window",
    ),
    CheckConstraint(
        "voucher_valid_days IS NULL OR voucher_valid_days > 0", name="valid_days_positive"
    ),
    CheckConstraint("per_customer_limit IS NULL OR per_customer_limit > 0", name="limit_positive"),
)

voucher_code_pool = Table(
    "voucher_code_pool",
    metadata,
    Column("pool_id", BigInteger, Identity(always=True)),
    Column(
        "product_id",
        UUID(as_uuid=True),
        ForeignKey("voucher_products.product_id"),
        nullable=False,
    ),
    Column("code", Text, nullable=False, unique=True),
    Column("purchase_id", UUID(as_uuid=True), unique=True),
    now_column("created_at"),
    Column("assigned_at", TIMESTAMPTZ),
    PrimaryKeyConstraint("pool_id", name="voucher_code_pool_pkey"),
    Index(
        "ix_voucher_code_pool_free",
        "product_id",
        "pool_id",
        postgresql_where=text("purchase_id IS NULL"),
    ),
)

voucher_purchases = Table(
    "voucher_purchases",
    metadata,
    Column("purchase_id", UUID(as_uuid=True), server_default=text("gen_random_uuid()")),
    Column("user_id", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column(
        "product_id",
        UUID(as_uuid=True),
        ForeignKey("voucher_products.product_id"),
        nullable=False,
    ),
    Column("price_points", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default="reserved"),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("run_id", Text),
    Column("burn_tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id")),
    Column("refund_tx_id", BigInteger, ForeignKey("wallet_transactions.tx_id")),
    Column("failure_code", Text),
    Column("failure_message", Text),
    now_column("created_at"),
    now_column("updated_at"),
    PrimaryKeyConstraint("purchase_id", name="voucher_purchases_pkey"),
    UniqueConstraint("user_id", "idempotency_key"),
    CheckConstraint("status IN ('reserved', 'paid', 'completed', 'failed')", name="status_known"),
    CheckConstraint("price_points > 0", name="price_positive"),
)

# One row per (product, customer): the per-customer limit is a conditional upsert on it.
voucher_customer_counts = Table(
    "voucher_customer_counts",
    metadata,
    Column("product_id", UUID(as_uuid=True), ForeignKey("voucher_products.product_id")),
    Column("user_id", Text),
    Column("taken", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("product_id", "user_id"),
    CheckConstraint("taken >= 0", name="taken_non_negative"),
)

vouchers = Table(
    "vouchers",
    metadata,
    Column("voucher_id", UUID(as_uuid=True), server_default=text("gen_random_uuid()")),
    Column(
        "purchase_id",
        UUID(as_uuid=True),
        ForeignKey("voucher_purchases.purchase_id"),
        nullable=False,
        unique=True,
    ),
    Column(
        "product_id",
        UUID(as_uuid=True),
        ForeignKey("voucher_products.product_id"),
        nullable=False,
    ),
    Column("user_id", Text, nullable=False),
    Column("code", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False, server_default="active"),
    Column("price_points", BigInteger, nullable=False),
    now_column("issued_at"),
    Column("expires_at", TIMESTAMPTZ),
    Column("used_at", TIMESTAMPTZ),
    Column("used_reference", Text),
    PrimaryKeyConstraint("voucher_id", name="vouchers_pkey"),
    CheckConstraint("status IN ('active', 'used', 'expired')", name="status_known"),
    CheckConstraint("(status = 'used') = (used_at IS NOT NULL)", name="used_has_time"),
    Index("ix_vouchers_user", "user_id", "issued_at"),
)
