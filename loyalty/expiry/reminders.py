"""The reminder batches: lots due within the reminder window (after the run's `as_of`, up to
`until`) that no run has reminded anyone of, a page at a time in (expires_at, lot_id) order (the
due index), and for each customer met in the page, one `points_expiring` notification of all
their lots in the window, written to the outbox with those lots recorded as reminded
(point_lot_reminders), in one transaction.

A customer is reminded once per run: once a page has recorded their lots, later pages skip
them. A lot is reminded once ever: its row in point_lot_reminders (primary key lot_id) keeps
every later run from naming it again. A retried batch finds the lots its committed attempt
recorded already reminded, so it writes nothing twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.expiry import rules
from loyalty.expiry.contracts import ReminderBatchInput, ReminderBatchResult, ReminderLot
from loyalty.notifications import outbox

_NOT_REMINDED = "NOT EXISTS (SELECT 1 FROM point_lot_reminders r WHERE r.lot_id = l.lot_id)"
_PAGE = text(f"""
    SELECT l.lot_id, l.wallet_id, l.expires_at FROM point_lots l
    WHERE l.remaining > 0 AND l.expires_at IS NOT NULL
      AND l.expires_at > :as_of AND l.expires_at <= :until
      AND (l.expires_at, l.lot_id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))
      AND {_NOT_REMINDED}
    ORDER BY l.expires_at, l.lot_id LIMIT :limit""")
# Every lot in the window of the page's customers (the draw index, by wallet).
_THEIR_LOTS = text(f"""
    SELECT l.lot_id, l.wallet_id, w.user_id, l.remaining, l.expires_at
    FROM point_lots l JOIN wallets w ON w.wallet_id = l.wallet_id
    WHERE l.wallet_id = ANY(:wallets) AND l.remaining > 0
      AND l.expires_at > :as_of AND l.expires_at <= :until AND {_NOT_REMINDED}""")
_RECORD = text("""
    INSERT INTO point_lot_reminders (lot_id, wallet_id, expiry_id, notification_key, points,
                                     expires_at)
    SELECT * FROM unnest(CAST(:lots AS bigint[]), CAST(:wallets AS uuid[]),
                         CAST(:runs AS text[]), CAST(:keys AS text[]),
                         CAST(:points AS bigint[]), CAST(:expires AS timestamptz[]))
    ON CONFLICT (lot_id) DO NOTHING""")
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


async def remind_batch(conn: AsyncConnection, batch: ReminderBatchInput) -> ReminderBatchResult:
    """Write the next page's reminders; the caller commits (one transaction)."""
    after_at, after_id = (
        (batch.after.expires_at, batch.after.lot_id) if batch.after else (_EPOCH, 0)
    )
    window = {"as_of": batch.as_of, "until": batch.until}
    page = (
        await conn.execute(
            _PAGE, {**window, "after_at": after_at, "after_id": after_id, "limit": batch.limit}
        )
    ).all()
    if not page:
        return ReminderBatchResult(fetched=0, customers=0, lots=0, last=None)
    wallets = list({row.wallet_id for row in page})
    rows = await conn.execute(_THEIR_LOTS, {**window, "wallets": wallets})
    lots = [ReminderLot(**row) for row in rows.mappings()]
    found = rules.reminders(lots, batch.expiry_id)
    recorded = [(r.notification.idempotency_key, lot) for r in found for lot in r.lots]
    if recorded:
        await conn.execute(
            _RECORD,
            {
                "lots": [lot.lot_id for _, lot in recorded],
                "wallets": [lot.wallet_id for _, lot in recorded],
                "runs": [batch.expiry_id] * len(recorded),
                "keys": [key for key, _ in recorded],
                "points": [lot.remaining for _, lot in recorded],
                "expires": [lot.expires_at for _, lot in recorded],
            },
        )
        await outbox.enqueue(conn, [r.notification for r in found])
    return ReminderBatchResult(
        fetched=len(page),
        customers=len(found),
        lots=len(recorded),
        last=rules.keyset(page[-1]),
    )
