-- What an earn reads, in one round trip (migration 0008).
--
-- earning_facts: the wallet of the user (opened on its first earn) locked for the rest of the
-- caller's transaction, then every fact the earn rules need, read after the lock was taken (each
-- statement of a PL/pgSQL function takes a new snapshot, so a refund or debt written by the
-- wallet's previous holder is seen). It reads; the rules stay in Python
-- (loyalty.earning.accrual), and the posting is the ledger's. Points on the trailing-12-month
-- basis are not among them: a ladder that counts them (loyalty.tiers) has the caller read them,
-- by the tiers' own definition of the window.
--
-- File format (read by the migration): statements are separated by a line holding only ";".

CREATE FUNCTION earning_facts(
    p_user_id text, p_booking_id text, p_idempotency_key text, p_paid_at timestamptz)
RETURNS TABLE (
    wallet_id uuid, user_id text, balance bigint, held bigint, tier text,
    lifetime_points bigint, version bigint, created_at timestamptz, updated_at timestamptz,
    as_of timestamptz, accrual_exists boolean, earn_exists boolean,
    tiers loyalty_tiers[], campaigns campaigns[],
    refunded bigint, full_refund boolean, debt bigint)
LANGUAGE plpgsql AS $$
DECLARE
    w wallets;
BEGIN
    w := ledger_wallet(p_user_id, true);
    SELECT * INTO w FROM wallets WHERE wallets.wallet_id = w.wallet_id FOR UPDATE;
    RETURN QUERY SELECT
        w.wallet_id, w.user_id, w.balance, w.held, w.tier, w.lifetime_points, w.version,
        w.created_at, w.updated_at, now(),
        EXISTS (SELECT 1 FROM booking_accruals a WHERE a.booking_id = p_booking_id),
        EXISTS (SELECT 1 FROM wallet_transactions t WHERE t.idempotency_key = p_idempotency_key),
        (SELECT array_agg(t ORDER BY t.rank) FROM loyalty_tiers t),
        (SELECT array_agg(c ORDER BY c.campaign_id) FROM campaigns c
         WHERE c.starts_at <= p_paid_at AND c.ends_at > p_paid_at),
        (SELECT COALESCE(SUM(r.amount), 0)::bigint FROM booking_refunds r
         WHERE r.booking_id = p_booking_id),
        (SELECT COALESCE(bool_or(r.full_refund), false) FROM booking_refunds r
         WHERE r.booking_id = p_booking_id),
        (SELECT COALESCE(SUM(d.points), 0)::bigint FROM points_debt_entries d
         WHERE d.user_id = w.user_id);
END;
$$
