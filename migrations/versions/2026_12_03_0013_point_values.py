"""Value on every ledger row: the table of point rates, campaigns' own rates, and the book value
of each posting, filled in by the database.

- `point_rates` holds the value of one point (in minor units of the currency) and the instant it
  starts; the rate in force at an instant is the row with the latest `starts_at` at or before
  it. Insert-only, like the ledger: a trigger refuses UPDATE, DELETE and TRUNCATE, and a new rate
  may not start in the past, so a rate never changes what was in force before it was written.
  Seeded with the base rate (the POINT_VALUE_MINOR setting in CURRENCY, 1 point = 1 VND as
  shipped) from '-infinity'.
- `campaigns.point_value_minor`: a campaign's own rate, when it has one.
- `wallet_transactions` gains `value_amount` (signed like the points the row moves),
  `value_rate`, `value_currency`, `rate_id` (the rate in force) and `value_campaign_id` (set
  when a campaign's own rate was used). A BEFORE INSERT trigger fills them when the inserting
  function leaves `value_amount` NULL, so the posting functions stay as they are:
  * valued points: the posted `amount`; for a hold or a release (which move only held points)
    `held_delta`, so a hold is valued positive and its release negative;
  * rate: the rate in force at the row's `created_at`; an earn issued under campaigns
    (counter account `issuance:campaign`) takes the own rate of the first of its campaign lines
    (in the rule trace's order, by campaign id) that has one, and a clawback that names an earn
    valued at a campaign's rate takes that same rate (the points it takes back were issued
    under it);
  * `value_amount = round(points * rate)`: an integer of minor units, rounded half away from
    zero (PostgreSQL's round(numeric)), which is symmetric: a posting and its exact opposite
    get opposite values, so a hold and its release, or +n and -n adjustments, net to zero.
- Existing rows are valued once, here: the one place the ledger's append-only trigger is
  disabled (as the table's owner, inside this migration's transaction), to value rows that had
  no value. Every one of them predates any configured rate and any campaign rate, so the seed
  rate is exactly what the trigger would have given them. After it the value columns are NOT
  NULL: every row carries its value, and readers need no view.

The application role may SELECT and INSERT rates (the admin API) and reads the value columns
with the rest of the ledger.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op
from sqlalchemy import text

from loyalty.core.settings import get_settings
from migrations import roles

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Up to 999,999.999999 minor units per point: times the ledger's bound on points (10^12) it
# still fits a bigint, so valuing a posting can never overflow.
RATE = "numeric(12, 6)"


def upgrade() -> None:
    settings = get_settings()
    op.execute(f"""
CREATE TABLE point_rates (
    rate_id bigint GENERATED ALWAYS AS IDENTITY,
    starts_at timestamptz NOT NULL,
    currency text NOT NULL,
    point_value_minor {RATE} NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    CONSTRAINT point_rates_pkey PRIMARY KEY (rate_id),
    CONSTRAINT uq_point_rates_starts_at UNIQUE (starts_at),
    CONSTRAINT ck_point_rates_value_positive CHECK (point_value_minor > 0)
)""")
    op.execute(
        text(
            "INSERT INTO point_rates (starts_at, currency, point_value_minor, created_by) "
            "VALUES ('-infinity', :currency, :value, 'migration 0013')"
        ).bindparams(currency=settings.currency, value=settings.point_value_minor)
    )
    # Insert-only: a rate is never rewritten, and one may not start before it is written.
    op.execute("""
CREATE FUNCTION point_rates_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'point_rates is insert-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.starts_at < clock_timestamp() THEN
        RAISE EXCEPTION 'a point rate may not start in the past (%)', NEW.starts_at
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$""")
    op.execute(
        "CREATE TRIGGER point_rates_guard BEFORE INSERT OR UPDATE OR DELETE ON point_rates "
        "FOR EACH ROW EXECUTE FUNCTION point_rates_guard()"
    )
    op.execute(
        "CREATE TRIGGER point_rates_no_truncate BEFORE TRUNCATE ON point_rates "
        "FOR EACH STATEMENT EXECUTE FUNCTION point_rates_guard()"
    )
    op.execute(
        f"ALTER TABLE campaigns ADD COLUMN point_value_minor {RATE}, "
        "ADD CONSTRAINT ck_campaigns_point_value_positive "
        "CHECK (point_value_minor IS NULL OR point_value_minor > 0)"
    )
    # No foreign keys on rate_id and value_campaign_id: each would take a KEY SHARE lock on the
    # one rate row every posting names (a hot row's multixacts), and the row holds its rate
    # itself; rates are never deleted, and campaigns have no delete.
    op.execute(f"""
ALTER TABLE wallet_transactions
    ADD COLUMN value_amount bigint,
    ADD COLUMN value_rate {RATE},
    ADD COLUMN value_currency text,
    ADD COLUMN rate_id bigint,
    ADD COLUMN value_campaign_id text""")
    op.execute("""
CREATE FUNCTION wallet_transactions_value() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rate point_rates;
    own numeric;
    campaign text;
BEGIN
    IF NEW.value_amount IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO rate FROM point_rates WHERE starts_at <= NEW.created_at
    ORDER BY starts_at DESC LIMIT 1;
    IF NEW.type = 'earn' AND NEW.counter_account = 'issuance:campaign' THEN
        SELECT c.campaign_id, c.point_value_minor INTO campaign, own
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(NEW.metadata -> 'rules') = 'array'
                                  THEN NEW.metadata -> 'rules' ELSE '[]' END)
             WITH ORDINALITY AS line(rule, n)
        JOIN campaigns c ON c.campaign_id = substr(line.rule ->> 'rule', 10)
        WHERE line.rule ->> 'rule' LIKE 'campaign:%' AND c.point_value_minor IS NOT NULL
        ORDER BY line.n LIMIT 1;
    ELSIF NEW.type = 'clawback' AND NEW.reverses_tx_id IS NOT NULL THEN
        SELECT value_campaign_id, value_rate INTO campaign, own FROM wallet_transactions
        WHERE tx_id = NEW.reverses_tx_id AND value_campaign_id IS NOT NULL;
    END IF;
    NEW.value_rate := COALESCE(own, rate.point_value_minor);
    NEW.value_amount := round(
        CASE WHEN NEW.amount <> 0 THEN NEW.amount ELSE NEW.held_delta END * NEW.value_rate);
    NEW.value_currency := rate.currency;
    NEW.rate_id := rate.rate_id;
    NEW.value_campaign_id := campaign;
    RETURN NEW;
END $$""")
    op.execute("REVOKE ALL ON FUNCTION wallet_transactions_value() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION point_rates_guard() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER wallet_transactions_value BEFORE INSERT ON wallet_transactions "
        "FOR EACH ROW EXECUTE FUNCTION wallet_transactions_value()"
    )
    # The one-time valuation of the rows that had none (see above): the only UPDATE the ledger
    # ever takes, with its append-only trigger off for it alone, in this transaction.
    guard = "wallet_transactions_no_update_delete"
    op.execute(f"ALTER TABLE wallet_transactions DISABLE TRIGGER {guard}")
    op.execute("""
UPDATE wallet_transactions t
SET value_amount = round(CASE WHEN t.amount <> 0 THEN t.amount ELSE t.held_delta END
                         * r.point_value_minor),
    value_rate = r.point_value_minor, value_currency = r.currency, rate_id = r.rate_id
FROM point_rates r
WHERE t.value_amount IS NULL""")
    op.execute(f"ALTER TABLE wallet_transactions ENABLE TRIGGER {guard}")
    op.execute("""
ALTER TABLE wallet_transactions
    ALTER COLUMN value_amount SET NOT NULL,
    ALTER COLUMN value_rate SET NOT NULL,
    ALTER COLUMN value_currency SET NOT NULL,
    ALTER COLUMN rate_id SET NOT NULL""")
    roles.grant("SELECT, INSERT", "point_rates")


def downgrade() -> None:
    op.execute("DROP TRIGGER wallet_transactions_value ON wallet_transactions")
    op.execute("DROP FUNCTION wallet_transactions_value()")
    op.execute("""
ALTER TABLE wallet_transactions DROP COLUMN value_campaign_id, DROP COLUMN rate_id,
    DROP COLUMN value_currency, DROP COLUMN value_rate, DROP COLUMN value_amount""")
    op.execute(
        "ALTER TABLE campaigns DROP CONSTRAINT ck_campaigns_point_value_positive, "
        "DROP COLUMN point_value_minor"
    )
    op.execute("DROP TABLE point_rates")
    op.execute("DROP FUNCTION point_rates_guard()")
