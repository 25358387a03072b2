"""The expiry's batches: a page of due lots (keyset on (expires_at, lot_id), the due index),
each expired by one `ledger.expire_lot` call in its own statement (autocommit: each posting
commits on its own, so a batch cut short keeps what it posted), and the page's counts.

Idempotent: the ledger expires a lot once (key `expire:lot:{id}`), so a retried batch posts
nothing twice. It also counts the same: the run's expire postings all come after the ledger row
it started from (`tx_watermark`), so a retried batch finds the lots an earlier attempt expired
(their postings replay) and counts them again; and a wallet counts as touched in the batch
holding the first of its lots the run expired."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty import ledger
from loyalty.expiry import rules
from loyalty.expiry.contracts import ExpiryBatchInput, ExpiryBatchResult, ExpiryStart
from loyalty.ledger import Lot, PostingResult

_WATERMARK = text("SELECT COALESCE(max(tx_id), 0) FROM wallet_transactions")
_DUE_COUNT = text(
    "SELECT count(*) FROM point_lots "
    "WHERE remaining > 0 AND expires_at IS NOT NULL AND expires_at <= :as_of"
)
# Lots this run expired after the keyset: its expire postings follow the watermark (a range of
# the ledger's primary key, then each posting's lot by its own). Read only when a batch is
# retried: the range grows with the run.
_EXPIRED_BY_RUN = text("""
    SELECT l.lot_id, l.wallet_id, l.opened_by_tx_id, l.points, l.remaining, l.expires_at,
           l.expired_tx_id, l.closed_at, l.created_at
    FROM wallet_transactions t
    JOIN point_lots l ON l.lot_id = CAST(t.metadata ->> 'lot_id' AS bigint)
                     AND l.expired_tx_id = t.tx_id
    WHERE t.tx_id > :watermark AND t.type = 'expire'
      AND (l.expires_at, l.lot_id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))
    ORDER BY l.expires_at, l.lot_id LIMIT :limit""")
# Of these wallets, those the run expired a lot of outside this batch (the wallet's ledger index).
_TOUCHED_BEFORE = text("""
    SELECT DISTINCT wallet_id FROM wallet_transactions
    WHERE wallet_id = ANY(:wallets) AND tx_id > :watermark AND type = 'expire'
      AND NOT (tx_id = ANY(:batch_txs))""")
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


async def start(conn: AsyncConnection, as_of: datetime) -> ExpiryStart:
    """The ledger row the run starts after, and how many lots are due."""
    watermark = int((await conn.execute(_WATERMARK)).scalar_one())
    due = int((await conn.execute(_DUE_COUNT, {"as_of": as_of})).scalar_one())
    return ExpiryStart(tx_watermark=watermark, due_estimate=due)


async def expire_batch(
    conns: Sequence[AsyncConnection],
    batch: ExpiryBatchInput,
    *,
    retried: bool,
    beat: Callable[[], None] = lambda: None,
) -> ExpiryBatchResult:
    """Expire the next page of due lots. `conns`: connections in autocommit, as many as
    postings in flight at once (the first also reads). `retried`: an earlier attempt of this
    batch may have expired some of its lots. `beat` is called after each posting."""
    reader = conns[0]
    after = (batch.after.expires_at, batch.after.lot_id) if batch.after else None
    due = await ledger.due_lots(reader, as_of=batch.as_of, after=after, limit=batch.limit)
    before: Sequence[Lot] = []
    if retried:
        before = await _expired_by_run(reader, batch)
    lots = rules.page(due, before, batch.limit)
    if not lots:
        return ExpiryBatchResult(
            fetched=0, lots_expired=0, points_expired=0, wallets_new=0, last=None
        )

    results: dict[int, PostingResult | None] = {}
    queue = list(reversed(lots))

    async def post(conn: AsyncConnection) -> None:
        while queue:
            lot = queue.pop()
            results[lot.lot_id] = await ledger.expire_lot(
                conn, lot_id=lot.lot_id, as_of=batch.as_of, description="points expired"
            )
            beat()

    try:
        async with asyncio.TaskGroup() as group:  # one failing posting cancels the others
            for conn in conns:
                group.create_task(post(conn))
    except ExceptionGroup as failed:  # the first failure, as the caller's handlers expect it
        raise failed.exceptions[0] from failed
    expired = [r for r in results.values() if r is not None]
    wallets = {r.posting.wallet_id for r in expired}
    touched = await _touched_before(reader, batch.tx_watermark, wallets, expired)
    return ExpiryBatchResult(
        fetched=len(lots),
        lots_expired=len(expired),
        points_expired=-sum(r.posting.amount for r in expired),
        wallets_new=rules.new_wallets(wallets, touched),
        last=rules.keyset(lots[-1]),
    )


async def _expired_by_run(conn: AsyncConnection, batch: ExpiryBatchInput) -> list[Lot]:
    after_at, after_id = (
        (batch.after.expires_at, batch.after.lot_id) if batch.after else (_EPOCH, 0)
    )
    rows = await conn.execute(
        _EXPIRED_BY_RUN,
        {
            "watermark": batch.tx_watermark,
            "after_at": after_at,
            "after_id": after_id,
            "limit": batch.limit,
        },
    )
    return [Lot(**row) for row in rows.mappings()]


async def _touched_before(
    conn: AsyncConnection,
    watermark: int,
    wallets: set[uuid.UUID],
    expired: Sequence[PostingResult],
) -> list[uuid.UUID]:
    if not wallets:
        return []
    rows = await conn.execute(
        _TOUCHED_BEFORE,
        {
            "wallets": list(wallets),
            "watermark": watermark,
            "batch_txs": [r.posting.tx_id for r in expired],
        },
    )
    return [row[0] for row in rows]
