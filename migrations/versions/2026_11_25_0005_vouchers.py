"""Vouchers: catalog, uploaded code pool, purchases (keyed by the client's idempotency key),
per-customer purchase counters, issued vouchers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE voucher_products (
    product_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_points bigint NOT NULL,
    code_source text NOT NULL DEFAULT 'generated',
    -- NULL: unlimited. Uploaded-code products count their uploaded codes here.
    inventory_total bigint,
    -- Reserved by purchases in flight plus sold; only conditional UPDATEs move it.
    inventory_taken bigint NOT NULL DEFAULT 0,
    sale_starts_at timestamptz,
    sale_ends_at timestamptz,
    voucher_valid_days integer,
    voucher_valid_until timestamptz,
    min_tier text,
    per_customer_limit integer,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT fk_voucher_products_min_tier_loyalty_tiers FOREIGN KEY (min_tier)
        REFERENCES loyalty_tiers (code) ON UPDATE CASCADE,
    CONSTRAINT ck_voucher_products_price_positive CHECK (price_points > 0),
    CONSTRAINT ck_voucher_products_code_source_known
        CHECK (code_source IN ('generated', 'uploaded')),
    CONSTRAINT ck_voucher_products_uploaded_is_finite
        CHECK (code_source = 'generated' OR inventory_total IS NOT NULL),
    CONSTRAINT ck_voucher_products_inventory_within_total
        CHECK (inventory_taken >= 0
               AND (inventory_total IS NULL OR inventory_taken <= inventory_total)),
    CONSTRAINT ck_voucher_products_sale_window
        CHECK (sale_starts_at IS NULL OR sale_ends_at IS NULL OR sale_starts_at < sale_ends_at),
    CONSTRAINT ck_voucher_products_valid_days_positive
        CHECK (voucher_valid_days IS NULL OR voucher_valid_days > 0),
    CONSTRAINT ck_voucher_products_limit_positive
        CHECK (per_customer_limit IS NULL OR per_customer_limit > 0)
);

CREATE TABLE voucher_code_pool (
    pool_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id uuid NOT NULL,
    code text NOT NULL,
    purchase_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz,
    CONSTRAINT fk_voucher_code_pool_product_id_voucher_products
        FOREIGN KEY (product_id) REFERENCES voucher_products (product_id),
    CONSTRAINT uq_voucher_code_pool_code UNIQUE (code),
    CONSTRAINT uq_voucher_code_pool_purchase_id UNIQUE (purchase_id)
);

CREATE INDEX ix_voucher_code_pool_free ON voucher_code_pool (product_id, pool_id)
    WHERE purchase_id IS NULL;

CREATE TABLE voucher_purchases (
    purchase_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id text NOT NULL,
    idempotency_key text NOT NULL,
    product_id uuid NOT NULL,
    price_points bigint NOT NULL,
    status text NOT NULL DEFAULT 'reserved',
    attempt integer NOT NULL DEFAULT 1,
    run_id text,
    burn_tx_id bigint,
    refund_tx_id bigint,
    failure_code text,
    failure_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_voucher_purchases_user_id UNIQUE (user_id, idempotency_key),
    CONSTRAINT fk_voucher_purchases_product_id_voucher_products
        FOREIGN KEY (product_id) REFERENCES voucher_products (product_id),
    CONSTRAINT fk_voucher_purchases_burn_tx_id_wallet_transactions
        FOREIGN KEY (burn_tx_id) REFERENCES wallet_transactions (tx_id),
    CONSTRAINT fk_voucher_purchases_refund_tx_id_wallet_transactions
        FOREIGN KEY (refund_tx_id) REFERENCES wallet_transactions (tx_id),
    CONSTRAINT ck_voucher_purchases_status_known
        CHECK (status IN ('reserved', 'paid', 'completed', 'failed')),
    CONSTRAINT ck_voucher_purchases_price_positive CHECK (price_points > 0)
);

-- One row per (product, customer): the per-customer limit is a conditional upsert on it.
CREATE TABLE voucher_customer_counts (
    product_id uuid NOT NULL,
    user_id text NOT NULL,
    taken integer NOT NULL DEFAULT 0,
    CONSTRAINT pk_voucher_customer_counts PRIMARY KEY (product_id, user_id),
    CONSTRAINT fk_voucher_customer_counts_product_id_voucher_products
        FOREIGN KEY (product_id) REFERENCES voucher_products (product_id),
    CONSTRAINT ck_voucher_customer_counts_taken_non_negative CHECK (taken >= 0)
);

CREATE TABLE vouchers (
    voucher_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    purchase_id uuid NOT NULL,
    product_id uuid NOT NULL,
    user_id text NOT NULL,
    code text NOT NULL,
    status text NOT NULL DEFAULT 'active',
    price_points bigint NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    used_at timestamptz,
    used_reference text,
    CONSTRAINT uq_vouchers_code UNIQUE (code),
    CONSTRAINT uq_vouchers_purchase_id UNIQUE (purchase_id),
    CONSTRAINT fk_vouchers_purchase_id_voucher_purchases
        FOREIGN KEY (purchase_id) REFERENCES voucher_purchases (purchase_id),
    CONSTRAINT fk_vouchers_product_id_voucher_products
        FOREIGN KEY (product_id) REFERENCES voucher_products (product_id),
    CONSTRAINT ck_vouchers_status_known CHECK (status IN ('active', 'used', 'expired')),
    CONSTRAINT ck_vouchers_used_has_time CHECK ((status = 'used') = (used_at IS NOT NULL))
);

CREATE INDEX ix_vouchers_user ON vouchers (user_id, issued_at)
"""

DOWNGRADE = """
DROP TABLE vouchers;

DROP TABLE voucher_customer_counts;

DROP TABLE voucher_purchases;

DROP TABLE voucher_code_pool;

DROP TABLE voucher_products
"""


def _execute_all(script: str) -> None:
    # asyncpg prepares each statement, so a script runs one statement at a time;
    # statements are separated by blank lines.
    for statement in script.split(";\n\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _execute_all(UPGRADE)


def downgrade() -> None:
    _execute_all(DOWNGRADE)
