-- The posting protocol of the ledger, written once, as PostgreSQL functions (migration 0007).
--
-- One function per posting kind (ledger_earn, ledger_adjust, ledger_burn, ledger_refund,
-- ledger_clawback, ledger_expire, ledger_hold, ledger_capture, ledger_release): one call and one
-- round trip per posting from any driver. Each validates its arguments, finds (or opens) the
-- wallet and hands the posting to ledger_post, which holds the protocol:
--   1. insert the row with ON CONFLICT (idempotency_key) DO NOTHING; a key already posted is a
--      replay when its stored request hash equals the caller's (the original is returned), and
--      a conflict otherwise;
--   2. move the wallet with one conditional UPDATE (available points never below zero).
-- Holds resolve once: capture and release lock the hold and check it is open, and a partial
-- unique index allows one resolving row per hold whatever the key.
--
-- The caller computes the request hash (loyalty.core.hashing.request_hash of what it asked
-- for), so a retry with the same key and request replays while a different request is refused.
-- How many points to post is the caller's business (earn rules, campaigns, caps stay in
-- Python); these functions only move them.
--
-- Refusals are raised with SQLSTATE class LW and a JSON DETAIL {"code", "details"}; the
-- caller's transaction is then aborted, so nothing of the posting remains. loyalty.ledger
-- turns them into the service's LoyaltyError family by `code`.
--
-- File format (read by the migration): statements are separated by a line holding only ";".

CREATE TYPE ledger_posting AS (
    tx_id bigint,
    wallet_id uuid,
    type text,
    amount bigint,
    held_delta bigint,
    currency_amount bigint,
    currency text,
    counter_account text,
    booking_id text,
    payment_id text,
    hold_id uuid,
    reverses_tx_id bigint,
    idempotency_key text,
    description text,
    metadata jsonb,
    created_at timestamptz,
    user_id text,
    balance bigint,
    held bigint,
    tier text,
    lifetime_points bigint,
    version bigint,
    wallet_created_at timestamptz,
    wallet_updated_at timestamptz,
    replayed boolean,
    hold_amount bigint,
    hold_status text,
    hold_expires_at timestamptz,
    hold_created_at timestamptz,
    hold_resolved_at timestamptz
)
;
-- A posting's answer: its row, the wallet after it, whether it was a replay, and for the hold
-- kinds the hold as it stands.
CREATE FUNCTION ledger_result(tx wallet_transactions, w wallets, replayed boolean,
                              h holds DEFAULT NULL)
RETURNS ledger_posting LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(tx.tx_id, tx.wallet_id, tx.type, tx.amount, tx.held_delta, tx.currency_amount,
        tx.currency, tx.counter_account, tx.booking_id, tx.payment_id, tx.hold_id,
        tx.reverses_tx_id, tx.idempotency_key, tx.description, tx.metadata, tx.created_at,
        w.user_id, w.balance, w.held, w.tier, w.lifetime_points, w.version, w.created_at,
        w.updated_at, replayed, h.amount, h.status, h.expires_at, h.created_at,
        h.resolved_at)::ledger_posting
$$
;
-- A hold kind's answer: the posting's, with the hold as it stands.
CREATE FUNCTION ledger_with_hold(r ledger_posting, h holds) RETURNS ledger_posting
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    r.hold_amount := h.amount;
    r.hold_status := h.status;
    r.hold_expires_at := h.expires_at;
    r.hold_created_at := h.created_at;
    r.hold_resolved_at := h.resolved_at;
    RETURN r;
END;
$$
;
CREATE FUNCTION ledger_refuse(p_code text, p_sqlstate text, p_message text,
                              p_details jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_sqlstate, MESSAGE = p_message,
        DETAIL = jsonb_build_object('code', p_code, 'details', p_details)::text;
END;
$$
;
-- Points of one posting: a positive integer (or, where a sign is allowed, non-zero), bounded
-- far above any real balance so overflow-sized requests are refused.
CREATE FUNCTION ledger_check_points(p_points bigint, p_signed boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_points IS NULL OR p_points = 0 OR (p_points < 0 AND NOT p_signed) THEN
        PERFORM ledger_refuse('validation_error', 'LW007',
            CASE WHEN p_signed THEN 'points must not be zero' ELSE 'points must be positive' END,
            jsonb_build_object('points', p_points));
    END IF;
    IF abs(p_points) > 1000000000000 THEN
        PERFORM ledger_refuse('validation_error', 'LW007',
            'points must be at most 1000000000000', jsonb_build_object('points', p_points));
    END IF;
END;
$$
;
-- The user's wallet; opened on the lowest tier when p_open and it does not exist yet.
CREATE FUNCTION ledger_wallet(p_user_id text, p_open boolean) RETURNS wallets
LANGUAGE plpgsql AS $$
DECLARE
    w wallets;
BEGIN
    SELECT * INTO w FROM wallets WHERE user_id = p_user_id;
    IF FOUND THEN
        RETURN w;
    END IF;
    IF NOT p_open THEN
        PERFORM ledger_refuse('wallet_not_found', 'LW003',
            format('no wallet for user %L', p_user_id), jsonb_build_object('user_id', p_user_id));
    END IF;
    IF p_user_id IS NULL OR length(p_user_id) NOT BETWEEN 1 AND 128 THEN
        PERFORM ledger_refuse('validation_error', 'LW007', 'user id must be 1 to 128 characters');
    END IF;
    INSERT INTO wallets (user_id, tier)
    VALUES (p_user_id, (SELECT code FROM loyalty_tiers ORDER BY rank LIMIT 1))
    ON CONFLICT (user_id) DO NOTHING
    RETURNING * INTO w;
    IF NOT FOUND THEN  -- opened meanwhile by a concurrent first posting
        SELECT * INTO w FROM wallets WHERE user_id = p_user_id;
    END IF;
    RETURN w;
END;
$$
;
-- The protocol: insert the row or replay the one posted under this key, then move the wallet.
CREATE FUNCTION ledger_post(
    p_wallet_id uuid, p_type text, p_amount bigint, p_held_delta bigint,
    p_lifetime_delta bigint, p_counter_account text, p_key text, p_request_hash text,
    p_booking_id text, p_payment_id text, p_hold_id uuid, p_reverses_tx_id bigint,
    p_currency_amount bigint, p_currency text, p_description text, p_metadata jsonb)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    tx wallet_transactions;
    w wallets;
    available bigint;
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
    END IF;
    RETURN ledger_result(tx, w, replayed);
END;
$$
;
-- Credit earned points (opening the wallet on its first earn); they count as lifetime points.
CREATE FUNCTION ledger_earn(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_booking_id text DEFAULT NULL, p_payment_id text DEFAULT NULL,
    p_currency_amount bigint DEFAULT NULL, p_currency text DEFAULT NULL,
    p_counter_account text DEFAULT 'issuance:base', p_description text DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points);
    RETURN ledger_post((ledger_wallet(p_user_id, true)).wallet_id, 'earn', p_points, 0,
        p_points, p_counter_account, p_idempotency_key, p_request_hash, p_booking_id,
        p_payment_id, NULL, NULL, p_currency_amount, p_currency, p_description, p_metadata);
END;
$$
;
-- An admin's signed correction, with its reason; a debit never takes available below zero.
CREATE FUNCTION ledger_adjust(
    p_user_id text, p_points bigint, p_reason text, p_idempotency_key text,
    p_request_hash text, p_actor text DEFAULT NULL)
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
        CASE WHEN p_actor IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('actor', p_actor) END);
END;
$$
;
-- Spend points at once, without a hold (a voucher bought with points).
CREATE FUNCTION ledger_burn(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_counter_account text, p_booking_id text DEFAULT NULL,
    p_currency_amount bigint DEFAULT NULL, p_currency text DEFAULT NULL,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points);
    RETURN ledger_post((ledger_wallet(p_user_id, false)).wallet_id, 'burn', -p_points, 0, 0,
        p_counter_account, p_idempotency_key, p_request_hash, p_booking_id, NULL, NULL, NULL,
        p_currency_amount, p_currency, p_description, p_metadata);
END;
$$
;
-- Take back earned points (a refunded booking, or a debt repaid out of a later earn). Lifetime
-- points stay: they count every point ever earned.
CREATE FUNCTION ledger_clawback(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_reverses_tx_id bigint DEFAULT NULL, p_booking_id text DEFAULT NULL,
    p_counter_account text DEFAULT 'issuance:clawback', p_description text DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points);
    RETURN ledger_post((ledger_wallet(p_user_id, false)).wallet_id, 'clawback', -p_points, 0,
        0, p_counter_account, p_idempotency_key, p_request_hash, p_booking_id, NULL, NULL,
        p_reverses_tx_id, NULL, NULL, p_description, p_metadata);
END;
$$
;
-- Points that expired unspent, posted to the breakage account.
CREATE FUNCTION ledger_expire(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_points(p_points);
    RETURN ledger_post((ledger_wallet(p_user_id, false)).wallet_id, 'expire', -p_points, 0, 0,
        'breakage', p_idempotency_key, p_request_hash, NULL, NULL, NULL, NULL, NULL, NULL,
        p_description, p_metadata);
END;
$$
;
-- Give back points spent by a burn or capture, in full or in part; all refunds of one spending
-- together never exceed it.
CREATE FUNCTION ledger_refund(
    p_reverses_tx_id bigint, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    spent wallet_transactions;
    result ledger_posting;
    refunded bigint;
BEGIN
    PERFORM ledger_check_points(p_points);
    SELECT * INTO spent FROM wallet_transactions WHERE tx_id = p_reverses_tx_id;
    IF NOT FOUND OR spent.type NOT IN ('burn', 'capture') THEN
        PERFORM ledger_refuse('not_found', 'LW004',
            format('no burn or capture with tx id %s', p_reverses_tx_id),
            jsonb_build_object('tx_id', p_reverses_tx_id));
    END IF;
    -- Every posting of a wallet updates its row, so this lock orders refunds of one spending.
    PERFORM 1 FROM wallets WHERE wallet_id = spent.wallet_id FOR UPDATE;
    result := ledger_post(spent.wallet_id, 'refund', p_points, 0, 0, spent.counter_account,
        p_idempotency_key, p_request_hash, spent.booking_id, NULL, NULL, p_reverses_tx_id,
        NULL, spent.currency, p_description, p_metadata);
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
-- Reserve points for a checkout: still in the balance, no longer available. A hold id names one
-- hold: asking again with its own key and request replays it; any other request is refused.
CREATE FUNCTION ledger_hold(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_hold_id uuid, p_expires_at timestamptz, p_booking_id text DEFAULT NULL,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    w wallets;
    h holds;
    placed_by text;
    result ledger_posting;
BEGIN
    PERFORM ledger_check_points(p_points);
    w := ledger_wallet(p_user_id, false);
    INSERT INTO holds (hold_id, wallet_id, amount, booking_id, expires_at)
    VALUES (p_hold_id, w.wallet_id, p_points, p_booking_id, p_expires_at)
    ON CONFLICT (hold_id) DO NOTHING
    RETURNING * INTO h;
    IF NOT FOUND THEN
        SELECT idempotency_key INTO placed_by FROM wallet_transactions
        WHERE hold_id = p_hold_id AND type = 'hold';
        IF placed_by IS DISTINCT FROM p_idempotency_key THEN
            PERFORM ledger_refuse('idempotency_conflict', 'LW002',
                format('hold %s already exists with another idempotency key', p_hold_id),
                jsonb_build_object('hold_id', p_hold_id, 'idempotency_key', p_idempotency_key));
        END IF;
        SELECT * INTO h FROM holds WHERE hold_id = p_hold_id;
    END IF;
    result := ledger_post(w.wallet_id, 'hold', 0, p_points, 0, 'redemption', p_idempotency_key,
        p_request_hash, p_booking_id, NULL, p_hold_id, NULL, NULL, NULL, p_description,
        p_metadata);
    RETURN ledger_with_hold(result, h);
END;
$$
;
-- Resolve an open hold exactly once: `captured` posts the held points as spent, `released`
-- makes them available again. A replay of the resolution answers it; a hold resolved by
-- another request is refused.
CREATE FUNCTION ledger_resolve_hold(
    p_hold_id uuid, p_outcome text, p_idempotency_key text, p_request_hash text,
    p_currency_amount bigint, p_currency text, p_description text, p_metadata jsonb)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    h holds;
    tx wallet_transactions;
    w wallets;
    result ledger_posting;
    capture boolean := p_outcome = 'captured';
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
        result := ledger_post(h.wallet_id, CASE WHEN capture THEN 'capture' ELSE 'release' END,
            CASE WHEN capture THEN -h.amount ELSE 0 END, -h.amount, 0, 'redemption',
            p_idempotency_key, p_request_hash, h.booking_id, NULL, h.hold_id, NULL,
            p_currency_amount, p_currency, p_description, p_metadata);
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
;
-- Post the held points as spent (a burn against the redemption account).
CREATE FUNCTION ledger_capture(
    p_hold_id uuid, p_idempotency_key text, p_request_hash text,
    p_currency_amount bigint DEFAULT NULL, p_currency text DEFAULT NULL,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE sql AS $$
    SELECT ledger_resolve_hold(p_hold_id, 'captured', p_idempotency_key, p_request_hash,
        p_currency_amount, p_currency, p_description, p_metadata);
$$
;
-- Void the hold: the points become available again.
CREATE FUNCTION ledger_release(
    p_hold_id uuid, p_idempotency_key text, p_request_hash text,
    p_description text DEFAULT NULL, p_metadata jsonb DEFAULT '{}')
RETURNS ledger_posting LANGUAGE sql AS $$
    SELECT ledger_resolve_hold(p_hold_id, 'released', p_idempotency_key, p_request_hash,
        NULL, NULL, p_description, p_metadata);
$$
