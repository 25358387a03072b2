"""Activities of VoucherPurchaseWorkflow. Each is one database transaction and idempotent:
the reservation is keyed by the customer's idempotency key, ledger postings by keys derived from
the purchase and its attempt, the voucher by the purchase (one per purchase). Refusals are final
(activities.support)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import transaction
from loyalty import ledger
from loyalty.notifications import outbox
from loyalty.vouchers import purchases
from loyalty.vouchers.contracts import (
    BurnPoints,
    IssueVoucher,
    PointsBurned,
    RefundPoints,
    ReleaseReservation,
    Reservation,
    ReserveVoucher,
    VoucherOut,
    delivery_notification,
)
from loyalty.vouchers.rules import VOUCHER_SALES_ACCOUNT, burn_key, refund_key

# Activity names are recorded in workflow histories: never rename them. Tests register fault
# doubles under the same names.
RESERVE = "reserve_voucher"
BURN = "burn_voucher_points"
ISSUE = "issue_voucher"
REFUND = "refund_voucher_points"
RELEASE = "release_voucher_reservation"


class VoucherActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn(name=RESERVE)
    async def reserve(self, command: ReserveVoucher) -> Reservation:
        """Check the product's rules and take one item of inventory (or resume the purchase)."""
        async with transaction(self._engine) as conn:
            return await purchases.reserve(conn, command)

    @activity.defn(name=BURN)
    async def burn(self, command: BurnPoints) -> PointsBurned:
        """Spend the price in points against the voucher sales account."""
        async with transaction(self._engine) as conn:
            result = await ledger.burn(
                conn,
                user_id=command.user_id,
                points=command.points,
                idempotency_key=burn_key(command.purchase_id, command.attempt),
                counter_account=VOUCHER_SALES_ACCOUNT,
                description=f"voucher: {command.product_name}",
                metadata={"purchase_id": str(command.purchase_id), "attempt": command.attempt},
            )
            await purchases.record_burn(
                conn, command.purchase_id, command.attempt, result.posting.tx_id
            )
        return PointsBurned(tx_id=result.posting.tx_id)

    @activity.defn(name=ISSUE)
    async def issue(self, command: IssueVoucher) -> VoucherOut:
        """Issue the voucher code (one per purchase, however often this runs). Its
        notification (and so its voucher.issued event) is written in the same transaction."""
        async with transaction(self._engine) as conn:
            voucher = await purchases.issue(conn, command.purchase_id)
            await outbox.enqueue(conn, [delivery_notification(voucher)])
            return voucher

    @activity.defn(name=REFUND)
    async def refund(self, command: RefundPoints) -> PointsBurned:
        """Compensation: give the burned points back (a refund posting reversing the burn)."""
        async with transaction(self._engine) as conn:
            result = await ledger.refund(
                conn,
                reverses_tx_id=command.burn_tx_id,
                points=command.points,
                idempotency_key=refund_key(command.purchase_id, command.attempt),
                description="voucher purchase undone",
                metadata={"purchase_id": str(command.purchase_id), "attempt": command.attempt},
            )
            await purchases.record_refund(
                conn, command.purchase_id, command.attempt, result.posting.tx_id
            )
        return PointsBurned(tx_id=result.posting.tx_id)

    @activity.defn(name=RELEASE)
    async def release(self, command: ReleaseReservation) -> bool:
        """Compensation: put the item back and mark the purchase failed."""
        async with transaction(self._engine) as conn:
            return await purchases.release(
                conn,
                command.purchase_id,
                command.attempt,
                failure_code=command.failure_code,
                failure_message=command.failure_message,
            )
