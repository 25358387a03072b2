"""One router per resource. api.app includes every router listed in ROUTERS, in this order.

Later resources (redemption, webhooks, tiers, vouchers) add a module here and one line below."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import (
    booking_events,
    campaigns,
    codec,
    customers,
    health,
    outbox,
    rates,
    reconciliation,
    redemption,
    reports,
    tiers,
    vouchers,
    wallets,
    webhooks,
)

ROUTERS: list[APIRouter] = [
    health.router,
    wallets.router,
    redemption.router,
    webhooks.router,
    vouchers.router,
    tiers.router,
    customers.router,
    campaigns.router,
    rates.router,
    booking_events.router,
    codec.router,
    outbox.router,
    reconciliation.router,
    reports.router,
]
