-- Tiers count the points a customer keeps, not the points that passed through (migration 0015).
--
-- Until now ledger_clawback left lifetime_points alone, so a customer could book, earn, have
-- the booking refunded and repeat, and climb a tier on lifetime points with nothing kept. From
-- here on lifetime_points and the trailing-12-month basis (loyalty.tiers) count the same thing:
--
--     points kept = earn rows + clawback rows (negative) - points_debt_entries
--
-- (debt entries: positive when a refund leaves a debt, negative when a later earn repays it).
--
-- - A refund takes back the tier credit of every point due at once, whether the clawback found
--   them in the balance or records them as a debt: the refund's clawback passes
--   p_lifetime_points = the points due. When the customer already spent every point the refund
--   is due, the clawback takes 0 points and still posts its row, which carries the tier credit
--   taken back (the row, not a side channel, is where lifetime_points moves).
-- - Repaying a debt out of a later earn takes points from the balance only
--   (p_lifetime_points = 0): its refund already took them off lifetime_points. In the formula
--   the repayment's clawback row and its negative debt entry cancel, so the trailing basis
--   agrees.
-- - lifetime_points never goes below zero.
--
-- Existing wallets get lifetime_points recomputed by that formula from the ledger and the debt
-- entries (the ledger itself is never rewritten). A wallet the recompute leaves short of its
-- tier is found by the next scheduled evaluation, which starts its downgrade grace.
--
-- File format (read by the migration): statements are separated by a line holding only ";".

DROP FUNCTION ledger_clawback(text, bigint, text, text, bigint, text, text, text, jsonb)
;
-- Take back earned points (a refunded booking, or a debt repaid out of a later earn), and with
-- them the tier credit they gave: lifetime points drop by p_lifetime_points (default: the
-- points taken), never below zero. A clawback of 0 points is allowed only to take back tier
-- credit (a refund whose points were all spent: everything due is owed).
CREATE FUNCTION ledger_clawback(
    p_user_id text, p_points bigint, p_idempotency_key text, p_request_hash text,
    p_reverses_tx_id bigint DEFAULT NULL, p_booking_id text DEFAULT NULL,
    p_counter_account text DEFAULT 'issuance:clawback', p_description text DEFAULT NULL,
    p_metadata jsonb DEFAULT '{}', p_lifetime_points bigint DEFAULT NULL)
RETURNS ledger_posting LANGUAGE plpgsql AS $$
DECLARE
    w wallets;
    lifetime bigint := COALESCE(p_lifetime_points, p_points);
BEGIN
    IF p_points IS DISTINCT FROM 0 OR COALESCE(p_lifetime_points, 0) = 0 THEN
        PERFORM ledger_check_points(p_points);
    END IF;
    IF p_lifetime_points < 0 THEN
        PERFORM ledger_refuse('validation_error', 'LW007',
            'lifetime points must not be negative',
            jsonb_build_object('lifetime_points', p_lifetime_points));
    ELSIF p_lifetime_points > 0 THEN
        PERFORM ledger_check_points(p_lifetime_points);  -- the same bound as any points
    END IF;
    w := ledger_wallet(p_user_id, false);
    -- Locked first, so the floor at zero reads the lifetime points this posting moves.
    SELECT * INTO w FROM wallets WHERE wallet_id = w.wallet_id FOR UPDATE;
    lifetime := LEAST(lifetime, GREATEST(w.lifetime_points, 0));
    RETURN ledger_post(w.wallet_id, 'clawback', -p_points, 0, -lifetime, p_counter_account,
        p_idempotency_key, p_request_hash, p_booking_id, NULL, NULL, p_reverses_tx_id, NULL,
        NULL, p_description,
        COALESCE(p_metadata, '{}') || jsonb_build_object('lifetime_points_taken', lifetime));
END;
$$
;
-- Lifetime points recomputed as the points kept (see the top of this file).
UPDATE wallets w SET lifetime_points = kept.points
FROM (
    SELECT wl.wallet_id,
           GREATEST(0, COALESCE(t.points, 0) - COALESCE(d.points, 0)) AS points
    FROM wallets wl
    LEFT JOIN (
        SELECT wallet_id, SUM(amount) AS points FROM wallet_transactions
        WHERE type IN ('earn', 'clawback') GROUP BY wallet_id
    ) t ON t.wallet_id = wl.wallet_id
    LEFT JOIN (
        SELECT user_id, SUM(points) AS points FROM points_debt_entries GROUP BY user_id
    ) d ON d.user_id = wl.user_id
) kept
WHERE w.wallet_id = kept.wallet_id AND w.lifetime_points <> kept.points
