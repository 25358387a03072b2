"""Side effects (ledger writes, Stripe calls, notifications) as Temporal activities.

Activities are methods of classes that receive their dependencies; `build_activities` wires them
for the worker. Add new activity classes here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core.settings import Settings


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    engine: AsyncEngine
    stripe: stripe.StripeClient | None = None  # None: made from settings (localstripe in dev)


def build_activities(deps: Dependencies) -> list[Callable[..., Any]]:
    # Imported here: activity modules import Dependencies from this package.
    from activities.earning import EarningActivities
    from activities.expiry import ExpiryActivities
    from activities.ledger import LedgerActivities
    from activities.notifications import NotificationActivities
    from activities.reconciliation import ReconciliationActivities
    from activities.redemption import RedemptionActivities, StripePaymentActivities
    from activities.tiers import TierActivities
    from activities.vouchers import VoucherActivities
    from loyalty.core.stripe_client import make_stripe_client

    ledger = LedgerActivities(deps)
    redemption = RedemptionActivities(deps.engine, deps.settings)
    stripe_client = deps.stripe or make_stripe_client(deps.settings)
    payments = StripePaymentActivities(stripe_client)
    # With the outbox relay on, the activities only record notifications; the relay sends.
    notify_url = None if deps.settings.outbox_relay else deps.settings.notify_url
    notifications = NotificationActivities(deps.engine, notify_url)
    vouchers = VoucherActivities(deps.engine)
    tiers = TierActivities(deps.engine, notify_url)
    earning = EarningActivities(deps.engine, deps.settings)
    reconciliation = ReconciliationActivities(deps.engine, deps.settings, stripe_client)
    expiry = ExpiryActivities(deps.engine)
    return [
        ledger.check_invariants,
        redemption.place_hold,
        redemption.capture,
        redemption.release,
        payments.create_payment_intent,
        payments.cancel_payment_intent,
        notifications.send,
        vouchers.reserve,
        vouchers.burn,
        vouchers.issue,
        vouchers.refund,
        vouchers.release,
        tiers.start,
        tiers.evaluate_batch,
        tiers.deliver,
        earning.accrue,
        earning.activate,
        earning.return_burned,
        earning.claw_back,
        reconciliation.reconcile_payments,
        reconciliation.reconcile_holds,
        reconciliation.reconcile_vouchers,
        expiry.start,
        expiry.expire_batch,
        expiry.remind_batch,
    ]
