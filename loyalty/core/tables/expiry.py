"""Points expiry (migration 0016): the lots each customer was reminded of, once per lot."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text
from sqlalchemy.dialects.postgresql import UUID

from loyalty.core.tables.base import TIMESTAMPTZ, metadata, now_column

point_lot_reminders = Table(
    "point_lot_reminders",
    metadata,
    Column("lot_id", BigInteger, ForeignKey("point_lots.lot_id"), primary_key=True),
    Column("wallet_id", UUID(as_uuid=True), ForeignKey("wallets.wallet_id"), nullable=False),
    Column("expiry_id", Text, nullable=False),
    Column("notification_key", Text, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("expires_at", TIMESTAMPTZ, nullable=False),
    now_column("created_at"),
)
