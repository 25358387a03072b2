-- Points expire in lots (migration 0012).
--
-- Every posting that makes points available opens a lot or gives points back to one; every
-- posting that takes available points draws them from lots, and `lot_movements` records which
-- lots each posting drew from or gave back to, so expiry only ever takes points still unspent:
--   * a credit (earn, adjustment credit) opens a lot expiring `validity` months after it is
--     posted: the caller's months (a campaign's or an adjustment's own; 0 means never), else the
--     connection's `loyalty.points_validity_months` (the POINTS_VALIDITY_MONTHS setting, which
--     the service's engine sets on every connection), else 24;
--   * a debit (burn, hold, clawback, adjustment debit) draws from the lots that expire first
--     (never-expiring ones last, older lots before newer on a tie); a capture moves no lot: its
--     hold drew them;
--   * a release gives the hold's points back to the lots they came from; a refund gives the
--     spent points back to the lots the burn (or the capture's hold) drew them from, those
--     expiring last first. A lot that has expired, or is past its expiry date, takes nothing
--     back: a refund's points go to a new lot with the default validity (the money came back,
--     the points start afresh); a release's go to a new lot that is due at once, because a
--     hold reserves points and never extends their life. Points a posting made before lots
--     existed gives back (no movements recorded) go to a new lot with the default validity.
--   * an expiry (ledger_expire_lot) takes a due lot's remaining points to the breakage account,
--     once per lot.
-- The tx ids in these tables name ledger rows without foreign keys: each is written by the posting
-- function in the statement that inserts the row it names, and a key check would lock that row
-- (FOR KEY SHARE) on every movement, for nothing the functions do not already guarantee.
-- Lots of a wallet change only under its wallet row's lock (every posting updates that row
-- first, ledger_expire_lot locks it), so the draws of concurrent postings never interleave.
-- Invariant (loyalty/ledger/invariants.py): the remaining points of a wallet's lots are its
-- available points (balance - held), and each lot's remaining is its points plus its movements.
--
-- File format (read by the migration): statements are separated by a line holding only ";".

CREATE TABLE point_lots (
    lot_id bigint GENERATED ALWAYS AS IDENTITY,
    wallet_id uuid NOT NULL,
    -- The posting that opened it; NULL for the lots migration 0012 opened for the points it found.
    opened_by_tx_id bigint,
    points bigint NOT NULL,
    remaining bigint NOT NULL,
    expires_at timestamptz,  -- NULL: never
    expired_tx_id bigint,  -- its expire posting
    -- Set once, when the lot is due and the expiry visits it: with its expire posting, or with
    -- nothing left to expire. A closed lot takes no points back and no expiry run visits it again.
    closed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_point_lots PRIMARY KEY (lot_id),
    CONSTRAINT fk_point_lots_wallet_id_wallets FOREIGN KEY (wallet_id)
        REFERENCES wallets (wallet_id),
    CONSTRAINT ck_point_lots_points_positive CHECK (points > 0),
    CONSTRAINT ck_point_lots_remaining_within CHECK (remaining >= 0 AND remaining <= points)
) WITH (fillfactor = 90)
;
-- Which lots a debit draws from, in order; and the lots the expiry run visits, by due date
-- (keyset: expires_at, lot_id). Neither names `remaining`, so drawing from a lot or giving
-- points back to it is a HOT update (no index entry; the table leaves room on each page), and
-- a lot leaves both when it closes.
CREATE INDEX ix_point_lots_draw ON point_lots (wallet_id, expires_at, lot_id)
    WHERE closed_at IS NULL
;
CREATE INDEX ix_point_lots_due ON point_lots (expires_at, lot_id)
    WHERE expires_at IS NOT NULL AND closed_at IS NULL
;
CREATE TABLE lot_movements (
    tx_id bigint NOT NULL,
    lot_id bigint NOT NULL,
    points bigint NOT NULL,  -- negative: drawn; positive: given back
    -- For points given back: the posting that drew them (a hold, a burn), so a spending is never
    -- given back to a lot more than it drew from it.
    source_tx_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_lot_movements PRIMARY KEY (tx_id, lot_id),
    CONSTRAINT fk_lot_movements_lot_id_point_lots FOREIGN KEY (lot_id)
        REFERENCES point_lots (lot_id),
    CONSTRAINT ck_lot_movements_points_nonzero CHECK (points <> 0)
)
;
CREATE INDEX ix_lot_movements_source ON lot_movements (source_tx_id)
    WHERE source_tx_id IS NOT NULL
;
-- Like the ledger, the movements are append-only.
CREATE TRIGGER lot_movements_no_update_delete BEFORE UPDATE OR DELETE ON lot_movements
    FOR EACH ROW EXECUTE FUNCTION wallet_transactions_append_only()
;
CREATE TRIGGER lot_movements_no_truncate BEFORE TRUNCATE ON lot_movements
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_transactions_append_only()
;
-- A release (and a refund of a capture) finds the hold's own row, whose draws it gives back: one
-- per hold, so unique, and partial, so only hold rows pay for it.
CREATE UNIQUE INDEX uq_wallet_transactions_hold_placed ON wallet_transactions (hold_id)
    WHERE type = 'hold'
;
-- A campaign may set how long the points of earns it adds to last (NULL: the default).
ALTER TABLE campaigns ADD COLUMN points_validity_months integer,
    ADD CONSTRAINT ck_campaigns_points_validity_within
        CHECK (points_validity_months BETWEEN 0 AND 1200)
;
-- The points each wallet had available when lots began: one lot, with the default validity
-- counted from the migration.
INSERT INTO point_lots (wallet_id, points, remaining, expires_at)
SELECT wallet_id, balance - held, balance - held, now() + interval '24 months'
FROM wallets WHERE balance - held > 0
;
-- When a lot opened now expires: `p_months` months from now (0: never), else the connection's
-- setting, else 24 months.
CREATE FUNCTION ledger_lot_expiry(p_months integer) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    months integer := COALESCE(p_months,
        NULLIF(current_setting('loyalty.points_validity_months', true), '')::integer, 24);
BEGIN
    IF months < 0 THEN
        PERFORM ledger_refuse('validation_error', 'LW007', 'validity must not be negative',
            jsonb_build_object('months', months));
    END IF;
    RETURN CASE WHEN months = 0 THEN NULL ELSE now() + make_interval(months => months) END;
END;
$$
;
CREATE FUNCTION ledger_lots_open(p_tx_id bigint, p_wallet_id uuid, p_points bigint,
                                 p_expires_at timestamptz) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO point_lots (wallet_id, opened_by_tx_id, points, remaining, expires_at)
    VALUES (p_wallet_id, p_tx_id, p_points, p_points, p_expires_at);
$$
;
-- Draw p_points from the wallet's lots, those expiring first first, in one statement.
CREATE FUNCTION ledger_lots_draw(p_tx_id bigint, p_wallet_id uuid, p_points bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    drawn bigint;
BEGIN
    WITH ordered AS (
        SELECT lot_id, remaining,
               sum(remaining) OVER (ORDER BY expires_at NULLS LAST, lot_id) - remaining AS before
        FROM point_lots WHERE wallet_id = p_wallet_id AND closed_at IS NULL AND remaining > 0
    ), taken AS (
        SELECT lot_id, least(remaining, p_points - before) AS points
        FROM ordered WHERE before < p_points
    ), moved AS (
        UPDATE point_lots l SET remaining = l.remaining - t.points
        FROM taken t WHERE l.lot_id = t.lot_id
    ), recorded AS (
        INSERT INTO lot_movements (tx_id, lot_id, points)
        SELECT p_tx_id, lot_id, -points FROM taken
    )
    SELECT COALESCE(sum(points), 0) INTO drawn FROM taken;
    IF drawn <> p_points THEN  -- available points are the lots' remaining: a broken invariant
        RAISE EXCEPTION 'wallet % has % points in lots, % to draw', p_wallet_id, drawn, p_points
            USING ERRCODE = 'data_corrupted';
    END IF;
END;
$$
;
-- Give p_points back from the spending p_source_tx_id (a hold or a burn) to the lots it drew
-- them from (the rule is at the top of this file). p_renew: where a lot can take nothing
-- back, the points drawn from it open a lot with the default validity (a refund) or one due at
-- once (a release).
CREATE FUNCTION ledger_lots_return(p_tx_id bigint, p_wallet_id uuid, p_source_tx_id bigint,
                                   p_points bigint, p_renew boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lot record;
    left_over bigint := p_points;
    from_closed bigint := 0;
    back bigint;
BEGIN
    FOR lot IN
        SELECT l.lot_id, l.expires_at, l.closed_at, -sum(m.points) AS returnable
        FROM lot_movements m JOIN point_lots l ON l.lot_id = m.lot_id
        WHERE m.tx_id = p_source_tx_id OR m.source_tx_id = p_source_tx_id
        GROUP BY l.lot_id
        HAVING -sum(m.points) > 0
        ORDER BY l.expires_at DESC NULLS FIRST, l.lot_id DESC
    LOOP
        EXIT WHEN left_over = 0;
        back := least(lot.returnable, left_over);
        left_over := left_over - back;
        IF lot.closed_at IS NULL AND (lot.expires_at IS NULL OR lot.expires_at > now()) THEN
            UPDATE point_lots SET remaining = remaining + back WHERE lot_id = lot.lot_id;
            INSERT INTO lot_movements (tx_id, lot_id, points, source_tx_id)
            VALUES (p_tx_id, lot.lot_id, back, p_source_tx_id);
        ELSE
            from_closed := from_closed + back;
        END IF;
    END LOOP;
    IF from_closed > 0 THEN
        PERFORM ledger_lots_open(p_tx_id, p_wallet_id, from_closed,
            CASE WHEN p_renew THEN ledger_lot_expiry(NULL) ELSE now() END);
    END IF;
    IF left_over > 0 THEN  -- drawn before lots existed
        PERFORM ledger_lots_open(p_tx_id, p_wallet_id, left_over, ledger_lot_expiry(NULL));
    END IF;
END;
$$
;
DROP FUNCTION ledger_earn(text, bigint, text, text, text, text, bigint, text, text, text, jsonb)
;
DROP FUNCTION ledger_adjust(text, bigint, text, text, text, text)
;
DROP FUNCTION ledger_expire(text, bigint, text, text, text, jsonb)
;
DROP FUNCTION ledger_post(uuid, text, bigint, bigint, bigint, text, text, text, text, text, uuid,
    bigint, bigint, text, text, jsonb)
;
-- The protocol: insert the row or replay the one posted under this key, move the wallet, then
-- its lots. What the lots do follows from the change to available points (amount - held_delta):
--   p_return_from: a credit gives back what that spending drew (a release, a refund);
--   p_lot_id: the debit takes from that lot alone and closes it (an expiry);
--   otherwise a credit opens a lot (p_validity_months) and a debit draws the earliest expiring.
CREATE FUNCTION ledger_post(
    p_wallet_id uuid, p_type text, p_amount bigint, p_held_delta bigint,
    p_lifetime_delta bigint, p_counter_account text, p_key text, p_request_hash text,
    p_booking_id text, p_payment_id text, p_hold_id uuid, p_reverses_tx_id bigint,
    p_currency_amount bigint, p_currency text, p_description text, p_metadata jsonb,
    p_validity_months integer DEFAULT NULL, p_return_from bigint DEFAULT NULL,
    p_renew boolean DEFAULT true, p_lot_id bigint DEFAULT NULL)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    tx wallet_transactions;
    w wallets;
    available bigint;
    change bigint := p_amount - p_held_delta;
    replayed boolean := false;
BEGIN
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 255 THEN
        PERFORM ledger_refuse('validation_error', 'LW007',
            'idempotency key must be 1 to 255 characters');
    END IF;
    INSERT INTO wallet_transactions (wallet_id, type, amount, held_delta, currency_amount,
        currency, counter_account, booking_id, payment_id, hold_id, reverses_tx_id,
        idempotency_key, request_hash, description, metadata)
    VALUES (p_wallet_id, p_type, p_amount, p_held_delta, p_currency_amount, p_currency,
        p_counter_account, p_booking_id, p_payment_id, p_hold_id, p_reverses_tx_id, p_key,
        p_request_hash, p_description, COALESCE(p_metadata, '{}'))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING * INTO tx;
    IF NOT FOUND THEN
        SELECT * INTO tx FROM wallet_transactions WHERE idempotency_key = p_key;
        IF tx.request_hash IS DISTINCT FROM p_request_hash THEN
            PERFORM ledger_refuse('idempotency_conflict', 'LW002',
                'this idempotency key was already used for a different request',
                jsonb_build_object('idempotency_key', p_key));
        END IF;
        SELECT * INTO w FROM wallets WHERE wallet_id = tx.wallet_id;
        replayed := true;
    ELSE
        UPDATE wallets
        SET balance = balance + p_amount, held = held + p_held_delta,
            lifetime_points = lifetime_points + p_lifetime_delta, version = version + 1,
            updated_at = now()
        WHERE wallet_id = p_wallet_id AND balance + p_amount - held - p_held_delta >= 0
        RETURNING * INTO w;
        IF NOT FOUND THEN
            SELECT balance - held INTO available FROM wallets WHERE wallet_id = p_wallet_id;
            PERFORM ledger_refuse('insufficient_points', 'LW001',
                format('not enough points: %s available, %s needed', available,
                       -(p_amount - p_held_delta)),
                jsonb_build_object('available', available,
                                   'requested', -(p_amount - p_held_delta)));
        END IF;
        IF p_lot_id IS NOT NULL THEN
            UPDATE point_lots
            SET remaining = remaining + change, expired_tx_id = tx.tx_id, closed_at = now()
            WHERE lot_id = p_lot_id;
            INSERT INTO lot_movements (tx_id, lot_id, points) VALUES (tx.tx_id, p_lot_id, change);
        ELSIF change < 0 THEN
            PERFORM ledger_lots_draw(tx.tx_id, p_wallet_id, -change);
        ELSIF change > 0 AND p_return_from IS NOT NULL THEN
            PERFORM ledger_lots_return(tx.tx_id, p_wallet_id, p_return_from, change, p_renew);
        ELSIF change > 0 THEN
            PERFORM ledger_lots_open(tx.tx_id, p_wallet_id, change,
                ledger_lot_expiry(p_validity_months));
        END IF;
    END IF;
    RETURN ledger_result(tx, w, replayed);
END;
$$
;
-- Credit earned points (opening the wallet on its first earn); they count as lifetime points.
-- p_validity_months: a campaign's own validity for the lot (0: never), else the default.
CREATE FUNCTION ledger_earn(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_booking_id text DEFAULT NULL, p_payment_id text DEFAULT NULL,
    p_currency_amount bigint DEFAULT NULL, p_currency text DEFAULT NULL,
    p_counter_account text DEFAULT 'issuance:base', p_description text DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}', p_validity_months integer DEFAULT NULL)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points);
    RETURN ledger_post((ledger_wallet(p_user_id, true)).wallet_id, 'earn', p_points, 0,
        p_points, p_counter_account, p_idempotency_key, p_request_hash, p_booking_id,
        p_payment_id, NULL, NULL, p_currency_amount, p_currency, p_description, p_metadata,
        p_validity_months);
END;
$$
;
-- An admin's signed correction, with its reason; a debit never takes available below zero.
-- A credit's lot expires after p_validity_months (0: never), else the default.
CREATE FUNCTION ledger_adjust(
    p_user_id text, p_points bigint, p_reason text, p_idempotency_key text,
    p_request_hash text, p_actor text DEFAULT NULL, p_validity_months integer DEFAULT NULL)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points, true);
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        PERFORM ledger_refuse('validation_error', 'LW007',
            'a reason is required for an adjustment');
    END IF;
    RETURN ledger_post((ledger_wallet(p_user_id, false)).wallet_id, 'adjustment', p_points, 0,
        0, 'adjustment', p_idempotency_key, p_request_hash, NULL, NULL, NULL, NULL, NULL, NULL,
        p_reason,
        CASE WHEN p_actor IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('actor', p_actor) END,
        p_validity_months);
END;
$$
;
-- Expire what is left of a lot that is due at p_as_of, to the breakage account: once per lot.
-- Returns no row when there is nothing to expire: not due yet, or nothing left in it (then the
-- lot closes, so no later run visits it again).
CREATE FUNCTION ledger_expire_lot(
    p_lot_id bigint, p_as_of timestamptz, p_idempotency_key text, p_request_hash text,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS SETOF ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    lot point_lots;
    tx wallet_transactions;
    w wallets;
BEGIN
    SELECT * INTO lot FROM point_lots WHERE lot_id = p_lot_id;
    IF NOT FOUND THEN
        PERFORM ledger_refuse('not_found', 'LW004', format('no lot %s', p_lot_id),
            jsonb_build_object('lot_id', p_lot_id));
    END IF;
    -- The wallet first, as every posting locks it, then the lot as it stands under that lock.
    PERFORM 1 FROM wallets WHERE wallet_id = lot.wallet_id FOR UPDATE;
    SELECT * INTO lot FROM point_lots WHERE lot_id = p_lot_id;
    IF lot.expired_tx_id IS NOT NULL THEN  -- expired already: a replay, or another request
        SELECT * INTO tx FROM wallet_transactions WHERE tx_id = lot.expired_tx_id;
        IF tx.idempotency_key IS DISTINCT FROM p_idempotency_key
           OR tx.request_hash IS DISTINCT FROM p_request_hash THEN
            PERFORM ledger_refuse('idempotency_conflict', 'LW002',
                format('lot %s was expired by another request', p_lot_id),
                jsonb_build_object('lot_id', p_lot_id, 'idempotency_key', p_idempotency_key));
        END IF;
        SELECT * INTO w FROM wallets WHERE wallet_id = tx.wallet_id;
        RETURN NEXT ledger_result(tx, w, true);
        RETURN;
    END IF;
    IF lot.closed_at IS NOT NULL OR lot.expires_at IS NULL OR lot.expires_at > p_as_of THEN
        RETURN;
    END IF;
    IF lot.remaining = 0 THEN
        UPDATE point_lots SET closed_at = now() WHERE lot_id = p_lot_id;
        RETURN;
    END IF;
    RETURN NEXT ledger_post(lot.wallet_id, 'expire', -lot.remaining, 0, 0, 'breakage',
        p_idempotency_key, p_request_hash, NULL, NULL, NULL, NULL, NULL, NULL, p_description,
        p_metadata || jsonb_build_object('lot_id', p_lot_id, 'expires_at', lot.expires_at),
        p_lot_id => p_lot_id);
END;
$$
;
-- Give back points spent by a burn or capture, in full or in part, to the lots they came from;
-- all refunds of one spending together never exceed it.
CREATE OR REPLACE FUNCTION ledger_refund(
    p_reverses_tx_id bigint, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    spent wallet_transactions;
    result ledger_posting;
    refunded bigint;
    drew bigint;  -- the posting that drew the spent points from lots: the burn, or the hold
BEGIN
    PERFORM ledger_check_points(p_points);
    SELECT * INTO spent FROM wallet_transactions WHERE tx_id = p_reverses_tx_id;
    IF NOT FOUND OR spent.type NOT IN ('burn', 'capture') THEN
        PERFORM ledger_refuse('not_found', 'LW004',
            format('no burn or capture with tx id %s', p_reverses_tx_id),
            jsonb_build_object('tx_id', p_reverses_tx_id));
    END IF;
    drew := spent.tx_id;
    IF spent.type = 'capture' THEN
        SELECT tx_id INTO drew FROM wallet_transactions
        WHERE hold_id = spent.hold_id AND type = 'hold';
    END IF;
    -- Every posting of a wallet updates its row, so this lock orders refunds of one spending.
    PERFORM 1 FROM wallets WHERE wallet_id = spent.wallet_id FOR UPDATE;
    result := ledger_post(spent.wallet_id, 'refund', p_points, 0, 0, spent.counter_account,
        p_idempotency_key, p_request_hash, spent.booking_id, NULL, NULL, p_reverses_tx_id,
        NULL, spent.currency, p_description, p_metadata, p_return_from => drew);
    IF NOT result.replayed THEN
        SELECT sum(amount) INTO refunded FROM wallet_transactions
        WHERE reverses_tx_id = p_reverses_tx_id AND type = 'refund';
        IF refunded > -spent.amount THEN
            PERFORM ledger_refuse('refund_exceeds_spending', 'LW006',
                format('refunds would total %s points but only %s were spent', refunded,
                       -spent.amount),
                jsonb_build_object('spent', -spent.amount, 'refunded', refunded - p_points,
                                   'requested', p_points));
        END IF;
    END IF;
    RETURN result;
END;
$$
;
-- Resolve an open hold exactly once: `captured` posts the held points as spent, `released`
-- gives them back to the lots the hold drew them from. A replay of the resolution answers it;
-- a hold resolved by another request is refused.
CREATE OR REPLACE FUNCTION ledger_resolve_hold(
    p_hold_id uuid, p_outcome text, p_idempotency_key text, p_request_hash text,
    p_currency_amount bigint, p_currency text, p_description text, p_metadata jsonb)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    h holds;
    tx wallet_transactions;
    w wallets;
    result ledger_posting;
    capture boolean := p_outcome = 'captured';
    placed bigint;
BEGIN
    SELECT * INTO h FROM holds WHERE hold_id = p_hold_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ledger_refuse('not_found', 'LW004', format('no hold %s', p_hold_id),
            jsonb_build_object('hold_id', p_hold_id));
    END IF;
    IF h.status <> 'open' THEN
        SELECT * INTO tx FROM wallet_transactions WHERE idempotency_key = p_idempotency_key;
        IF NOT FOUND OR tx.request_hash IS DISTINCT FROM p_request_hash THEN
            PERFORM ledger_refuse('hold_not_open', 'LW005',
                format('hold %s is already %s', p_hold_id, h.status),
                jsonb_build_object('hold_id', p_hold_id, 'status', h.status));
        END IF;
        SELECT * INTO w FROM wallets WHERE wallet_id = tx.wallet_id;
        RETURN ledger_result(tx, w, true, h);
    ELSE
        IF NOT capture THEN  -- a capture moves no lot: the hold drew them
            SELECT tx_id INTO placed FROM wallet_transactions
            WHERE hold_id = p_hold_id AND type = 'hold';
        END IF;
        result := ledger_post(h.wallet_id, CASE WHEN capture THEN 'capture' ELSE 'release' END,
            CASE WHEN capture THEN -h.amount ELSE 0 END, -h.amount, 0, 'redemption',
            p_idempotency_key, p_request_hash, h.booking_id, NULL, h.hold_id, NULL,
            p_currency_amount, p_currency, p_description, p_metadata,
            p_return_from => placed, p_renew => false);
        IF result.replayed THEN  -- an open hold has no resolution: the key names another posting
            PERFORM ledger_refuse('idempotency_conflict', 'LW002',
                'this idempotency key was already used for another posting',
                jsonb_build_object('idempotency_key', p_idempotency_key));
        END IF;
        UPDATE holds SET status = p_outcome, resolved_at = now() WHERE hold_id = p_hold_id
        RETURNING * INTO h;
    END IF;
    RETURN ledger_with_hold(result, h);
END;
$$
